// sharp's side of bench/image_pipeline.sh: the same input, the same target,
// THREADS images in flight (libvips concurrency 1 each), for SECONDS.
// Prints: images_per_second peak_rss_mib output_bytes
//
// node sharp_bench.mjs FILE CASE THREADS SECONDS
// CASE: fit500 | w800 | fill1200x630 | webp500 | avif500 | png500
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.SHARP_DIR + "/");
const sharp = require("sharp");

const [file, kind, threadsArg, secondsArg] = process.argv.slice(2);
const threads = Number(threadsArg);
const seconds = Number(secondsArg);
const input = readFileSync(file);

sharp.concurrency(1);
sharp.cache(false);

const cases = {
  fit500: (s) => s.resize(500, 500, { fit: "inside", withoutEnlargement: true }).jpeg({ quality: 80, progressive: true }),
  w800: (s) => s.resize(800, null, { withoutEnlargement: true }).jpeg({ quality: 80, progressive: true }),
  fill1200x630: (s) => s.resize(1200, 630, { fit: "cover" }).jpeg({ quality: 80, progressive: true }),
  webp500: (s) => s.resize(500, 500, { fit: "inside", withoutEnlargement: true }).webp({ quality: 80 }),
  avif500: (s) => s.resize(500, 500, { fit: "inside", withoutEnlargement: true }).avif({ quality: 50 }),
  png500: (s) => s.resize(500, 500, { fit: "inside", withoutEnlargement: true }).png(),
};
const pipeline = cases[kind];
if (!pipeline) throw new Error(`unknown case ${kind}`);
const once = () => pipeline(sharp(input)).toBuffer();

const outputBytes = (await once()).length;
const deadline = Date.now() + seconds * 1000;
let done = 0;
const started = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: threads }, async () => {
    while (Date.now() < deadline) {
      await once();
      done += 1;
    }
  }),
);
const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
const peakMib = process.resourceUsage().maxRSS / 1024;
console.log(`${(done / elapsed).toFixed(1)} ${peakMib.toFixed(0)} ${outputBytes}`);
