// lounge.mjs - drives The Lounge's page in headless chromium for
// tests/e2e/ircclients.py (class Lounge). One JSON object a line on stdin is
// one command; each gets one JSON line on stdout: {id, ok: true, ...} or
// {id, ok: false, error}. Commands run one at a time, each within its
// timeout_ms. stdin closing ends the browser and the script.
//
//   open {url, user, password}        start chromium, sign in
//   connect {nick, channels, serverPassword, sasl: {account, password}|null}
//                                     fill in and submit the connect form
//   wait_joined {channel, nick}       the channel is in the list and shows nick's join
//   say {channel, text}               type text in the channel's input, Enter
//   wait_message {channel, nick, text}  a message text from nick in the channel
//   messages {channel}                [{type, from, text}] of the channel's list
//   screenshot {path}                 the page as a PNG
//   close                             close the browser
import { chromium } from "playwright-core";
import readline from "node:readline";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
// Headless, as root, on a machine with no network but loopback: nothing in
// the background may try to reach out.
const CHROMIUM_ARGS = [
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-dev-shm-usage",
];

let browser = null;
const t0 = Date.now();
function note(what) {
	process.stderr.write(`lounge.mjs: ${((Date.now() - t0) / 1000).toFixed(2)} s: ${what}\n`);
}
let page = null;

function channelItem(channel) {
	return page.locator(
		`.channel-list-item[data-type="channel"][data-name="${channel}"]`
	);
}

// Opens the channel and returns its view. A join coming meanwhile may open
// another channel (see channelMessages): then it clicks again.
async function openChannel(channel, timeout) {
	const end = Date.now() + timeout;
	const left = () => Math.max(end - Date.now(), 1);
	const item = channelItem(channel);
	await item.waitFor({ state: "visible", timeout });
	const view = page.locator(`#chat .chat-view[data-type="channel"][aria-label="${channel}"]`);
	for (;;) {
		if ((await item.getAttribute("aria-selected")) !== "true") {
			await item.click({ timeout: left() });
		}
		try {
			await view.waitFor({ state: "visible", timeout: Math.min(1000, left()) });
			return view;
		} catch (err) {
			if (Date.now() >= end) throw err;
		}
	}
}

async function readMessages(view) {
	return view.locator(".messages .msg").evaluateAll((nodes) =>
		nodes.map((n) => ({
			type: n.getAttribute("data-type"),
			from: n.getAttribute("data-from") || "",
			text: (n.querySelector(".content")?.innerText || "").trim(),
		}))
	);
}

// The page renders the open channel's messages only, and The Lounge opens
// each channel as it is joined (its client's "join" handler): a join that
// comes later (chatd's default room, #lobby) takes the page away from the
// channel a command opened. So each look opens the channel again.
async function channelMessages(channel, timeout) {
	return readMessages(await openChannel(channel, timeout));
}

async function poll(what, timeout, probe) {
	const end = Date.now() + timeout;
	for (;;) {
		const found = await probe(Math.max(end - Date.now(), 1));
		if (found) return found;
		if (Date.now() >= end) throw new Error(`timed out after ${timeout} ms: ${what}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

const commands = {
	async open({ url, user, password, timeout }) {
		browser = await chromium.launch({
			executablePath: CHROMIUM,
			args: CHROMIUM_ARGS,
			timeout,
		});
		note("chromium started");
		page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
		page.setDefaultTimeout(timeout);
		await page.goto(url, { timeout, waitUntil: "domcontentloaded" });
		note("page loaded");
		await page.locator("#sign-in form").waitFor({ timeout });
		note("sign-in form shown");
		await page.fill("#signin-username", user);
		await page.fill("#signin-password", password);
		await page.click('#sign-in button[type="submit"]');
		await page.locator("#connect form").waitFor({ timeout });
		note("signed in");
		return {};
	},

	async connect({ nick, channels, serverPassword, sasl, timeout }) {
		const form = page.locator("#connect form");
		await form.waitFor({ timeout });
		await page.fill("#connect\\:name", "chatd");
		await page.fill("#connect\\:nick", nick);
		await page.fill("#connect\\:username", nick);
		await page.fill("#connect\\:realname", nick);
		await page.fill("#connect\\:channels", channels || "");
		await page.fill("#connect\\:password", serverPassword || "");
		if (sasl) {
			await form.locator('input[name="sasl"][value="plain"]').check();
			await page.fill("#connect\\:saslAccount", sasl.account);
			await page.fill("#connect\\:saslPassword", sasl.password);
		} else {
			await form.locator('input[name="sasl"][value=""]').check();
		}
		await form.locator('button[type="submit"]').click();
		// The network appears in the sidebar once the server has it.
		await page.locator('.channel-list-item[data-type="lobby"]').waitFor({ timeout });
		return {};
	},

	async wait_joined({ channel, nick, timeout }) {
		await poll(`${nick} joining ${channel}`, timeout, async (left) =>
			(await channelMessages(channel, left)).some(
				(m) => m.type === "join" && m.from === nick
			)
		);
		return {};
	},

	async say({ channel, text, timeout }) {
		await openChannel(channel, timeout);
		const input = page.locator("#input");
		await input.fill(text);
		await input.press("Enter");
		return {};
	},

	async wait_message({ channel, nick, text, timeout }) {
		const found = await poll(`"${text}" from ${nick} in ${channel}`, timeout, async (left) =>
			(await channelMessages(channel, left)).find(
				(m) => m.type === "message" && m.from === nick && m.text === text
			)
		);
		return { message: found };
	},

	async messages({ channel, timeout }) {
		const view = await openChannel(channel, timeout);
		return { messages: await readMessages(view) };
	},

	async screenshot({ path }) {
		await page.screenshot({ path });
		return { path };
	},

	async close() {
		if (browser) await browser.close();
		browser = null;
		return {};
	},
};

function answer(obj) {
	process.stdout.write(JSON.stringify(obj) + "\n");
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
	if (!line.trim()) continue;
	let request;
	try {
		request = JSON.parse(line);
	} catch (err) {
		answer({ id: null, ok: false, error: `bad JSON: ${err.message}` });
		continue;
	}
	const run = commands[request.cmd];
	if (!run) {
		answer({ id: request.id, ok: false, error: `unknown command ${request.cmd}` });
		continue;
	}
	try {
		const timeout = request.timeout_ms || 15000;
		const result = await run({ ...request, timeout });
		answer({ id: request.id, ok: true, ...result });
	} catch (err) {
		answer({ id: request.id, ok: false, error: String(err && err.stack ? err.stack : err) });
	}
}
if (browser) await browser.close();
