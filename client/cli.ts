// Entry point of the `drctl` command (bin/drctl.js loads this through tsx).
import { main } from './main.ts';

process.exitCode = await main(process.argv);
