// Preloaded into the PowerSync service in tests (node --require): the
// service listens on 0.0.0.0, hard-coded (module-core's CoreModule); tests
// must serve loopback only, so a listen on all interfaces becomes 127.0.0.1.
const net = require('node:net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [options] = args;
  if (options && typeof options === 'object' && ['0.0.0.0', '::', undefined].includes(options.host))
    args[0] = { ...options, host: '127.0.0.1' };
  return listen.apply(this, args);
};
