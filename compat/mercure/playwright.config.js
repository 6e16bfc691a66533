// Wraps the Mercure conformance suite's own playwright.config.ts without
// editing it. Their config has no way to name a browser binary, and
// Playwright's own Chromium cannot be downloaded here, so this file loads
// theirs as it is and changes only what running it here needs:
//
//   - testDir: theirs is "./.", relative to their config; this file lives
//     elsewhere, so it is made absolute (the suite's directory);
//   - outputDir: Playwright's artifacts go to a temporary directory, not
//     next to this file in the repository;
//   - the "chromium" project launches the Chromium of
//     PLAYWRIGHT_CHROMIUM_PATH (run.sh sets Debian's /usr/bin/chromium),
//     with the flags internal/browsertest uses.
//
// Everything else (timeouts, baseURL from BASE_URL, .env through dotenv,
// retries and workers under CI, the devices) is theirs. run.sh picks the
// project and the reporter on the command line.
//
// Environment: MERCURE_SUITE_DIR (required) the suite's directory;
// PLAYWRIGHT_CHROMIUM_PATH (required) the browser; PLAYWRIGHT_OUTPUT_DIR
// (required) where Playwright writes its artifacts.
"use strict";

const path = require("path");

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`compat/mercure/playwright.config.js: ${name} is not set (run compat/mercure/run.sh)`);
  return v;
}

const suite = path.resolve(need("MERCURE_SUITE_DIR"));
const chromiumPath = need("PLAYWRIGHT_CHROMIUM_PATH");
const outputDir = need("PLAYWRIGHT_OUTPUT_DIR");

// Their config is TypeScript; Playwright's loader transpiles it on require,
// and its own imports (@playwright/test, dotenv) resolve from the suite's
// node_modules because the file is there.
const loaded = require(path.join(suite, "playwright.config.ts"));
const theirs = loaded.default || loaded;

const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

module.exports = {
  ...theirs,
  testDir: path.resolve(suite, theirs.testDir || "."),
  outputDir,
  projects: (theirs.projects || []).map((p) =>
    p.name !== "chromium"
      ? p
      : {
          ...p,
          use: {
            ...p.use,
            launchOptions: {
              ...((p.use && p.use.launchOptions) || {}),
              executablePath: chromiumPath,
              args: chromiumArgs,
            },
          },
        },
  ),
};
