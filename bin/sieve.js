#!/usr/bin/env node
const { main } = await import('../dist/src/cli/main.js');
await main(process.argv);
