#!/usr/bin/env node
// The `pipeline` command. This file is committed, not built, so that `npm ci` can link it
// into node_modules/.bin: npm links bins before the `prepare` build makes dist/ (a bin
// pointing into dist/ was skipped, and `npx pipeline` failed on a fresh clone).
import '../dist/cli.js';
