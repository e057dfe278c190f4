#!/usr/bin/env node
// The `pipeline` command. This file is committed, not built, so that `npm ci` can link it
// into node_modules/.bin: npm links bins before the `prepare` build makes dist/ (a bin
// pointing into dist/ was skipped, and `npx pipeline` failed on a fresh clone).
// It runs the bundled CLI (rolldown.config.mjs; built by `npm run build`), which starts in
// about three quarters of the time dist/cli.js takes.
import '../dist/bundle/cli.js';
