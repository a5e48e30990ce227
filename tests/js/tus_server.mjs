// @tus/server with @tus/file-store (stock, from npm): the peer `python -m bench tus` measures
// chute's tus endpoint against, on the same disk.
//
//   node tus_server.mjs PORT DIRECTORY
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port, directory] = process.argv.slice(2);
const tusServer = new Server({ path: '/files', datastore: new FileStore({ directory }) });
http.createServer((req, res) => tusServer.handle(req, res)).listen(Number(port), '127.0.0.1', () => {
  console.log(`ready on ${port}`);
});
