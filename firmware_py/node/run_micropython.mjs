// Runs a Python script under MicroPython 1.27 (the WebAssembly port, in this Node) with
// the firmware package on the VM's filesystem, as /lib/firmware_py.
//
//   node run_micropython.mjs SCRIPT.py [--firmware DIR] [--heap BYTES]
//
// DIR may hold .py sources or the .mpy files of `qms firmware build` (both are copied).
// --heap sets MicroPython's GC heap (default 8 MB): e.g. 102400 for what an ESP32 leaves free.
//
// The script may use top-level `await` (it runs through runPythonAsync), so it can
// yield to Node's event loop with `await asyncio.sleep(...)`. Exit status: 0 when the
// script finished, 1 when it raised (the MicroPython traceback goes to stderr), 2 on a
// usage or loading error. Lines the script prints go to stdout.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let firmware = resolve(here, "..");
let heapsize = 8 * 1024 * 1024;
const scripts = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--firmware") firmware = resolve(args[++i]);
  else if (args[i] === "--heap") heapsize = parseInt(args[++i], 10);
  else scripts.push(resolve(args[i]));
}
if (scripts.length !== 1) {
  console.error("usage: node run_micropython.mjs SCRIPT.py [--firmware DIR]");
  process.exit(2);
}

function copyTree(FS, src, dst) {
  FS.mkdirTree(dst);
  for (const name of readdirSync(src)) {
    const path = join(src, name);
    if (statSync(path).isDirectory()) {
      if (name !== "node_modules" && name !== "__pycache__") copyTree(FS, path, dst + "/" + name);
    } else if (name.endsWith(".py") || name.endsWith(".mpy")) {
      FS.writeFile(dst + "/" + name, readFileSync(path));
    }
  }
}

let mp;
try {
  mp = await loadMicroPython({
    heapsize,
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
  });
  copyTree(mp.FS, firmware, "/lib/firmware_py");
  mp.FS.mkdirTree("/flash");
} catch (e) {
  console.error("could not start MicroPython: " + e);
  process.exit(2);
}
const code = "import sys\nif '/lib' not in sys.path:\n    sys.path.append('/lib')\n" +
  readFileSync(scripts[0], "utf8");
try {
  await mp.runPythonAsync(code);
} catch (e) {
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
process.exit(0);
