// Aedes baseline for `make bench` (the settings of the neutral benchmark kit this project was first measured with).
// Install once: npm install --prefix bench   (aedes 1.2.0, pinned in bench/package.json)
// Run: node bench/aedes-server.mjs [port]
import net from "node:net";
import { Aedes } from "aedes";

const port = Number(process.argv[2] || 18832);
const aedes = await Aedes.createBroker();
const server = net.createServer(aedes.handle);
server.listen(port, "127.0.0.1", () => console.log("aedes listening on", port));
aedes.on("clientError", () => {});
aedes.on("connectionError", () => {});
