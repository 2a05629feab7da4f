//! Per-site settings: how much of a record is kept, and for how long.

use std::{fmt, time::Duration};

/// The unit the limits are stated in; the one place days become seconds.
pub const DAY: Duration = Duration::from_secs(86_400);

/// The shortest lifetime (of a consent, of a preference selection).
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The longest lifetime or retention a site may set: 100 years.
pub const MAX_SETTING_DURATION: Duration = Duration::from_secs(36_500 * DAY.as_secs());

/// The settings in force for a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteSettings {
    /// Off: the minimal record (no user agent, page URL or IP of any form).
    pub detailed_logging: bool,
    pub consent_lifetime: Duration,
    /// How long a record is kept after it expires.
    pub retention: Duration,
    /// On: page URLs are stored without their query string.
    pub drop_query_strings: bool,
}

/// What sites inherit when neither they nor their tenant set a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerDefaults {
    pub consent_lifetime: Duration,
    pub retention: Duration,
}

/// A change of settings; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteSettingsUpdate {
    pub detailed_logging: Option<bool>,
    pub consent_lifetime: Option<Duration>,
    pub retention: Option<Duration>,
    pub drop_query_strings: Option<bool>,
}

/// The one rule for every lifetime (of a consent, of a preference
/// selection): at least a second, at most 100 years.
pub fn lifetime(value: Duration) -> Result<Duration, String> {
    if value < MIN_LIFETIME || value > MAX_SETTING_DURATION {
        return Err(format!(
            "must be between 1 second and {} days",
            MAX_SETTING_DURATION.as_secs() / DAY.as_secs()
        ));
    }
    Ok(value)
}

/// A setting of [`SiteSettingsUpdate`], to say which one is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    ConsentLifetime,
    Retention,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::ConsentLifetime => "consent_lifetime",
            Setting::Retention => "retention",
        })
    }
}

impl SiteSettingsUpdate {
    /// Checks the ranges: a lifetime as [`lifetime`] allows, a retention of
    /// zero to 100 years. Returns the first setting that failed.
    pub fn check(&self) -> Result<(), (Setting, String)> {
        if let Some(Err(problem)) = self.consent_lifetime.map(lifetime) {
            return Err((Setting::ConsentLifetime, problem));
        }
        if self
            .retention
            .is_some_and(|retention| retention > MAX_SETTING_DURATION)
        {
            return Err((
                Setting::Retention,
                format!(
                    "must be at most {} days",
                    MAX_SETTING_DURATION.as_secs() / DAY.as_secs()
                ),
            ));
        }
        Ok(())
    }
}
