// offline.cjs - preloaded (node --require) into The Lounge's server by
// tests/e2e/ircclients.py: name lookups of anything but localhost fail at
// once, without a DNS query, so that the server stays on loopback (at start
// it fetches its changelog from a public host; the tests connect to IP
// addresses only).
"use strict";
const dns = require("node:dns");
const net = require("node:net");

function allowed(hostname) {
	return net.isIP(String(hostname)) !== 0 || hostname === "localhost";
}

function refusal(hostname) {
	const err = new Error(`getaddrinfo ENOTFOUND ${hostname} (loopback only in the tests)`);
	return Object.assign(err, { code: "ENOTFOUND", syscall: "getaddrinfo", hostname });
}

const lookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
	if (typeof options === "function") {
		callback = options;
		options = {};
	}
	if (!allowed(hostname)) {
		process.nextTick(callback, refusal(hostname));
		return {};
	}
	return lookup.call(this, hostname, options, callback);
};

const promisesLookup = dns.promises.lookup;
dns.promises.lookup = function (hostname, options) {
	if (!allowed(hostname)) return Promise.reject(refusal(hostname));
	return promisesLookup.call(this, hostname, options);
};
