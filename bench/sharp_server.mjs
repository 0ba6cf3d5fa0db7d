// The on-the-fly peer of bench/load.sh's miss path: an HTTP server that
// resizes on every request with sharp (the imgproxy / thumbor model without a
// cache), from an original held in memory. GET /{W}x{H}/anything → JPEG.
//
// SHARP_DIR=… node sharp_server.mjs FILE PORT
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(process.env.SHARP_DIR + "/");
const sharp = require("sharp");
const [file, port] = process.argv.slice(2);
const input = readFileSync(file);
sharp.cache(false);

createServer(async (req, res) => {
  const m = /^\/(\d+)x(\d+)\//.exec(req.url);
  if (!m) {
    res.writeHead(400).end("bad size\n");
    return;
  }
  try {
    const out = await sharp(input)
      .resize(Number(m[1]), Number(m[2]), { fit: "inside" })
      .jpeg({ quality: 80, progressive: true })
      .toBuffer();
    res.writeHead(200, { "content-type": "image/jpeg" }).end(out);
  } catch {
    res.writeHead(500).end();
  }
}).listen(Number(port), "127.0.0.1");
