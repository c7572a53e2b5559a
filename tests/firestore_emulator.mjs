// Runs the @firestore-emulator/server gRPC service on 127.0.0.1 only.
//
// Usage: node tests/firestore_emulator.mjs <port> <node_modules dir> [--trace]
//
// The package's FirestoreServer.start() binds 0.0.0.0. Its constructor already builds the grpc-js
// Server with the Firestore service registered (kept in the TypeScript-private `server` field);
// this script never calls start() and binds that Server to the loopback address itself. (The
// package's deep-path copy of the service cannot be paired with a state of our own: each bundle
// carries its own error class, and a mixed pair turns ALREADY_EXISTS into UNKNOWN.)
//
// With --trace, every call is printed as one JSON line {"method", "request"} before it is served,
// so tests can check which RPCs and queries a store sends. Prints "listening <port>" once bound;
// stops on SIGTERM/SIGINT or when stdin closes (the test process went away).
import { createRequire } from "node:module";
import path from "node:path";

const [portArg, modulesArg, ...flags] = process.argv.slice(2);
const port = Number.parseInt(portArg ?? "", 10);
if (!Number.isInteger(port) || port <= 0 || !modulesArg) {
  console.error("usage: node firestore_emulator.mjs <port> <node_modules dir> [--trace]");
  process.exit(2);
}

// Resolve the packages from the given node_modules, wherever this script lives.
const require = createRequire(path.join(path.resolve(modulesArg), "_train_resolver.js"));
const grpc = require("@grpc/grpc-js");
const { FirestoreServer } = require("@firestore-emulator/server");

if (flags.includes("--trace")) {
  const addService = grpc.Server.prototype.addService;
  grpc.Server.prototype.addService = function (definition, implementation) {
    const traced = {};
    for (const name of Object.keys(definition)) {
      const handler = implementation[name];
      if (typeof handler !== "function") continue;
      traced[name] = (call, ...rest) => {
        const request = call.request?.toObject ? call.request.toObject() : null;
        process.stdout.write(`${JSON.stringify({ method: name, request }, bytesAsBase64)}\n`);
        return handler.call(implementation, call, ...rest);
      };
    }
    return addService.call(this, definition, traced);
  };
}

function bytesAsBase64(_key, value) {
  return value instanceof Uint8Array ? Buffer.from(value).toString("base64") : value;
}

const emulator = new FirestoreServer();
const server = emulator.server;
if (!server || typeof server.bindAsync !== "function") {
  console.error("@firestore-emulator/server changed shape: FirestoreServer has no grpc-js `server` field");
  process.exit(3);
}
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    console.error(`cannot bind 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  console.log(`listening ${bound}`);
});

const stop = () => {
  server.forceShutdown();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
