//! Types that are valid by construction. No I/O happens here: `api` builds
//! these from requests, `store` reads and writes them.

/// Declares an enum stored and sent as its number, with `from_number` and
/// `number`: each number is written once, in the declaration.
macro_rules! numbered_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($variant:ident = $n:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $($variant = $n),+
        }

        impl $name {
            pub fn from_number(n: i32) -> Option<Self> {
                match n {
                    $($n => Some(Self::$variant),)+
                    _ => None,
                }
            }

            pub fn number(self) -> i32 {
                self as i32
            }
        }
    };
}

pub mod audit;
pub mod auth;
pub mod clock;
pub mod consent;
pub mod erasure;
pub mod ids;
pub mod keyring;
pub mod network;
pub mod page;
pub mod preference;
pub mod receipt;
pub mod seal;
pub mod site;
pub mod time;
pub mod validation;
pub mod web;
