// Drives the system's Chromium (headless, through playwright-core, which
// downloads no browser) over the test page, as a visitor would:
//
//   node drive.cjs CHROMIUM ALLOWED_URL REFUSED_URL
//
// On ALLOWED_URL (an origin the publishable key allows): "Accept all" on
// the banner, then reopen the preferences, turn analytics off, save. On
// REFUSED_URL (the same page from an origin it does not): "Accept all".
// Prints one JSON object: what each page's logConsent() came to, its
// consent id, and the CORS errors the browser reported.
const path = require('path');
const {chromium} = require(path.join(__dirname, '../../target/tools/node_modules/playwright-core'));

const [executablePath, allowedUrl, refusedUrl] = process.argv.slice(2);
const TIMEOUT = 20000;

async function visit(browser, url, steps) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const console = [];
  page.on('console', (message) => console.push(message.text()));
  await page.goto(url);
  const logs = async (count) => {
    await page.waitForFunction((n) => window.logged.length >= n, count, {timeout: TIMEOUT});
    return page.evaluate(() => window.logged);
  };
  await steps(page, logs);
  const result = {
    logged: await page.evaluate(() => window.logged),
    consentId: await page.evaluate(() => CookieConsent.getCookie('consentId')),
    corsErrors: console.filter((text) => text.includes('CORS policy')),
  };
  await context.close();
  return result;
}

async function main() {
  const browser = await chromium.launch({executablePath, headless: true});
  try {
    const allowed = await visit(browser, allowedUrl, async (page, logs) => {
      await page.locator('#cc-main .cm').getByRole('button', {name: 'Accept all'}).click();
      await logs(1);
      await page.locator('#preferences').click();
      // The toggle's input is hidden behind its label, which a visitor clicks.
      await page.locator('#cc-main .pm label:has(input.section__toggle[value="analytics"])').click();
      await page.locator('#cc-main .pm').getByRole('button', {name: 'Save preferences'}).click();
      await logs(2);
    });
    const refused = await visit(browser, refusedUrl, async (page, logs) => {
      await page.locator('#cc-main .cm').getByRole('button', {name: 'Accept all'}).click();
      await logs(1);
    });
    process.stdout.write(JSON.stringify({allowed, refused}) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`drive.cjs: ${error.stack || error}\n`);
  process.exit(1);
});
