// The local-mode page: a small browser client of filegate, to see it work.
//
// It calls filegate only through gRPC-Web (the client generated from proto/
// into web/gen/ by web/build), and uploads the way the Filestack picker
// does: an UploadPolicy from filegate, the file straight to Filestack's
// store API with that policy, then RegisterHandle. In local mode "Filestack"
// is the embedded emulator; /local/config says where it and the gRPC-Web
// listener are, and /local/token mints development tokens.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { FileGatewayService, type Document, type Event } from "../gen/filegate/v1/filegate_pb";

type Gateway = Client<typeof FileGatewayService>;

interface Config {
  grpc_web_url: string;
  filestack_url: string;
}

/** A signed URL and when to stop using it (ms since the epoch). */
interface Signed {
  url: string;
  until: number;
}

/** Deadline of every unary call (the README: set one on every call). */
const CALL = { timeoutMs: 30_000 };
const THUMB_SIZE = 96;
const PAGE_SIZE = 100;

const el = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let config: Config;
let client: Gateway;
let token = "";
let owner = "";
let watching: AbortController | null = null;
let lastEventId = 0n;
let listGeneration = 0;
let tokenGeneration = 0;
let refreshTimer = 0;
/** Signed URLs by `kind:documentId`, reused while valid. */
const signed = new Map<string, Signed>();

// --- status line ---------------------------------------------------------

function status(text: string, state: "ok" | "busy" | "error" = "ok"): void {
  const line = el("status");
  line.textContent = text;
  line.dataset.state = state;
}

function fail(what: string, error: unknown): void {
  status(`${what}: ${describe(error)}`, "error");
}

/** `CODE (REASON): message` for a gRPC error, the message otherwise. */
function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    const reason = errorReason(error);
    return `${codeName(error.code)}${reason ? ` (${reason})` : ""}: ${error.rawMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Code.PermissionDenied -> "PERMISSION_DENIED", as gRPC names it. */
function codeName(code: Code): string {
  return (Code[code] ?? `CODE_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The `reason` of the error's google.rpc.ErrorInfo (field 1), if any. */
function errorReason(error: ConnectError): string {
  for (const detail of error.details) {
    if (!("type" in detail) || detail.type !== "google.rpc.ErrorInfo") continue;
    try {
      const reader = new BinaryReader(detail.value);
      while (reader.pos < reader.len) {
        const [field, wireType] = reader.tag();
        if (field === 1) return reader.string();
        reader.skip(wireType, field);
      }
    } catch {
      // a malformed detail: the code and message are enough
    }
  }
  return "";
}

// --- token -----------------------------------------------------------------

async function mint(): Promise<void> {
  const sub = el<HTMLInputElement>("sub").value.trim();
  status(`minting a token for ${sub}…`, "busy");
  try {
    const answer = await fetch("/local/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sub }),
    });
    if (!answer.ok) {
      const text = (await answer.text()).trim();
      const why = text || (answer.status === 404 ? "this gateway cannot mint tokens: paste one" : "");
      status(`mint: HTTP ${answer.status}: ${why}`, "error");
      return;
    }
    const minted = (await answer.json()) as { token: string };
    el<HTMLTextAreaElement>("token").value = minted.token;
    await useToken(minted.token);
  } catch (error) {
    fail("mint", error);
  }
}

/** Checks the token with WhoAmI; then lists the documents and watches events. */
async function useToken(candidate: string): Promise<void> {
  const generation = ++tokenGeneration;
  listGeneration++; // a list still loading for the previous token is not shown
  stopWatching();
  token = candidate.trim();
  owner = "";
  lastEventId = 0n;
  signed.clear();
  el("events").replaceChildren();
  renderDocuments([]);
  setOwner("");
  enable(false);
  if (!token) {
    status("no token: mint or paste one", "error");
    return;
  }
  status("WhoAmI…", "busy");
  let who: string;
  try {
    who = (await client.whoAmI({}, CALL)).owner;
  } catch (error) {
    if (generation === tokenGeneration) fail("WhoAmI", error);
    return;
  }
  if (generation !== tokenGeneration) return; // another token meanwhile
  owner = who;
  setOwner(owner);
  enable(true);
  status(`signed in as ${owner}`);
  startWatching();
  await refresh();
}

function setOwner(name: string): void {
  const label = el("owner");
  label.textContent = name || "none";
  label.dataset.owner = name;
}

function enable(on: boolean): void {
  el<HTMLButtonElement>("upload").disabled = !on;
  el<HTMLButtonElement>("refresh").disabled = !on;
}

// --- upload ----------------------------------------------------------------

/** What Filestack's store API answers (the MIME type is under `type`). */
interface Stored {
  url: string;
  filename?: string;
  size?: number;
  type?: string;
}

async function upload(): Promise<void> {
  const input = el<HTMLInputElement>("file");
  const file = input.files?.[0];
  if (!file) {
    status("pick a file first", "error");
    return;
  }
  const button = el<HTMLButtonElement>("upload");
  button.disabled = true;
  try {
    status(`UploadPolicy for ${file.name}…`, "busy");
    let grant;
    try {
      grant = await client.uploadPolicy({}, CALL);
    } catch (error) {
      return fail("UploadPolicy", error);
    }
    if (BigInt(file.size) > grant.maxSizeBytes) {
      status(`${file.name} is ${file.size} bytes, over the policy's ${grant.maxSizeBytes}`, "error");
      return;
    }
    // Filestack's store API with the policy, as the picker sends it. The
    // path is the policy's folder (it ends with "/"): Filestack stores the
    // file under it with a unique key, so two files of the same name never
    // share one.
    const target = new URL("/api/store/S3", config.filestack_url);
    const query = target.searchParams;
    query.set("key", grant.apiKey);
    query.set("policy", grant.policy);
    query.set("signature", grant.signature);
    query.set("path", grant.path);
    query.set("filename", file.name);
    if (file.type) query.set("mimetype", file.type);
    status(`storing ${file.name} (${file.size} bytes) at Filestack…`, "busy");
    let handle: string;
    try {
      // The raw bytes; without a type, Filestack guesses from the name.
      const answer = await fetch(target, { method: "POST", body: file });
      if (!answer.ok) {
        const text = (await answer.text()).trim().slice(0, 300);
        status(`Filestack store: HTTP ${answer.status}: ${text}`, "error");
        return;
      }
      const stored = (await answer.json()) as Stored;
      // The handle is the last path segment of the file's URL.
      handle = new URL(stored.url).pathname.split("/").pop() ?? "";
    } catch (error) {
      return fail("Filestack store", error);
    }
    status(`RegisterHandle ${handle}…`, "busy");
    let registered: Document | undefined;
    try {
      registered = (await client.registerHandle({ handle, requestId: randomId() }, CALL)).document;
    } catch (error) {
      return fail(`RegisterHandle ${handle}`, error);
    }
    input.value = "";
    status(`uploaded ${registered?.filename} (${registered?.id}, handle ${handle})`);
    await refresh();
  } finally {
    button.disabled = !owner;
  }
}

/** 32 hex digits (crypto.randomUUID needs a secure context; this does not). */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- documents ---------------------------------------------------------------

async function refresh(): Promise<void> {
  if (!owner) return;
  const generation = ++listGeneration;
  const documents: Document[] = [];
  try {
    let pageToken = "";
    do {
      const page = await client.listDocuments({ pageSize: PAGE_SIZE, pageToken }, CALL);
      documents.push(...page.documents);
      pageToken = page.nextPageToken;
    } while (pageToken);
  } catch (error) {
    return fail("ListDocuments", error);
  }
  // A newer refresh started meanwhile: it renders.
  if (generation === listGeneration) renderDocuments(documents);
}

/** Refreshes soon, once for a burst of events. */
function refreshSoon(): void {
  clearTimeout(refreshTimer);
  refreshTimer = window.setTimeout(() => void refresh(), 300);
}

function renderDocuments(documents: Document[]): void {
  const body = el("documents");
  body.replaceChildren(...documents.map(row));
  body.dataset.count = String(documents.length);
}

function row(doc: Document): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset.documentId = doc.id;
  tr.dataset.handle = doc.handle;
  tr.dataset.filename = doc.filename;
  tr.dataset.contentType = doc.contentType;
  tr.dataset.size = String(doc.sizeBytes);

  const thumb = cell(tr, "thumb");
  if (doc.contentType.startsWith("image/")) {
    const img = document.createElement("img");
    img.className = "thumbnail";
    img.alt = `thumbnail of ${doc.filename}`;
    img.dataset.width = String(THUMB_SIZE);
    img.dataset.height = String(THUMB_SIZE);
    thumb.append(img);
    signedUrl("thumb", doc).then(
      (url) => (img.src = url),
      (error) => fail(`Thumbnail ${doc.id}`, error),
    );
  } else {
    thumb.textContent = "—";
    thumb.className += " muted";
  }

  const name = cell(tr, "file");
  const strong = document.createElement("strong");
  strong.textContent = doc.filename;
  const details = document.createElement("div");
  details.className = "mono muted";
  details.textContent = `${doc.id} · ${doc.handle} · ${doc.contentType}`;
  name.append(strong, details);

  cell(tr, "size").textContent = formatSize(doc.sizeBytes);
  cell(tr, "created mono").textContent = doc.createTime
    ? timestampDate(doc.createTime).toISOString().slice(0, 19).replace("T", " ")
    : "";

  const actions = cell(tr, "actions");
  const download = document.createElement("a");
  download.className = "download";
  download.textContent = "Download";
  download.target = "_blank";
  download.rel = "noopener";
  download.addEventListener("click", (event) => void openDownload(event, doc, download));
  signedUrl("download", doc).then(
    (url) => (download.href = url),
    (error) => fail(`SignedUrl ${doc.id}`, error),
  );
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => void deleteDocument(doc, remove));
  actions.append(download, " ", remove);
  return tr;
}

function cell(tr: HTMLTableRowElement, className: string): HTMLTableCellElement {
  const td = tr.insertCell();
  td.className = className;
  return td;
}

function formatSize(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A Thumbnail or SignedUrl URL for the document, reused while it has a minute left. */
async function signedUrl(kind: "thumb" | "download", doc: Document): Promise<string> {
  const key = `${kind}:${doc.id}`;
  const cached = signed.get(key);
  if (cached && cached.until > Date.now()) return cached.url;
  const answer =
    kind === "thumb"
      ? await client.thumbnail({ documentId: doc.id, width: THUMB_SIZE, height: THUMB_SIZE }, CALL)
      : await client.signedUrl({ documentId: doc.id }, CALL);
  const expires = answer.expireTime ? timestampDate(answer.expireTime).getTime() : Date.now();
  signed.set(key, { url: answer.url, until: expires - 60_000 });
  return answer.url;
}

/** Follows the link, after signing a new URL when its own has expired. */
async function openDownload(event: MouseEvent, doc: Document, link: HTMLAnchorElement): Promise<void> {
  const cached = signed.get(`download:${doc.id}`);
  if (cached && cached.until > Date.now() && link.href === cached.url) return;
  event.preventDefault();
  const opened = window.open("", "_blank");
  try {
    link.href = await signedUrl("download", doc);
    if (opened) opened.location.href = link.href;
  } catch (error) {
    opened?.close();
    fail(`SignedUrl ${doc.id}`, error);
  }
}

async function deleteDocument(doc: Document, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  status(`Delete ${doc.filename}…`, "busy");
  try {
    await client.delete({ documentId: doc.id }, CALL);
  } catch (error) {
    button.disabled = false;
    return fail(`Delete ${doc.id}`, error);
  }
  signed.delete(`thumb:${doc.id}`);
  signed.delete(`download:${doc.id}`);
  status(`deleted ${doc.filename} (${doc.id})`);
  await refresh();
}

// --- events ----------------------------------------------------------------

function stopWatching(): void {
  watching?.abort();
  watching = null;
  setWatch("off", "(not watching)");
}

function startWatching(): void {
  const control = new AbortController();
  watching = control;
  void watch(control.signal);
}

function setWatch(state: string, text: string): void {
  const label = el("watch");
  label.dataset.state = state;
  label.textContent = text;
}

/**
 * WatchEvents for as long as the token is in use: a stream that ends (the
 * gateway restarted or drained, the network broke) is opened again after the
 * last event received, so nothing is lost or repeated.
 */
async function watch(signal: AbortSignal): Promise<void> {
  let delay = 1000;
  while (!signal.aborted) {
    setWatch("on", lastEventId ? `(watching, after event ${lastEventId})` : "(watching)");
    let why = "the stream ended";
    try {
      for await (const event of client.watchEvents({ afterEventId: lastEventId }, { signal })) {
        if (signal.aborted) return;
        delay = 1000;
        lastEventId = event.id;
        addEvent(event);
      }
    } catch (error) {
      if (signal.aborted) return;
      const err = ConnectError.from(error);
      if (err.code === Code.Unauthenticated) {
        setWatch("off", "(not watching)");
        return fail("WatchEvents", err);
      }
      why = `stream ended: ${describe(err)}`;
    }
    if (signal.aborted) return;
    setWatch("retry", `(${why}; resuming in ${delay / 1000} s)`);
    await new Promise((resume) => setTimeout(resume, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

function addEvent(event: Event): void {
  const list = el("events");
  const li = document.createElement("li");
  li.dataset.eventId = String(event.id);
  li.dataset.action = event.action;
  li.dataset.handle = event.handle;
  li.dataset.documentId = event.documentId;
  const time = event.receiveTime
    ? timestampDate(event.receiveTime).toISOString().slice(11, 19)
    : "";
  li.textContent = `#${event.id} ${time} ${event.action} ${event.handle || "-"} ${event.documentId || "-"}`;
  list.append(li);
  list.scrollTop = list.scrollHeight;
  // Another client (or Filestack) may have changed the list.
  refreshSoon();
}

// --- start -----------------------------------------------------------------

async function start(): Promise<void> {
  const sub = el<HTMLInputElement>("sub");
  sub.addEventListener("input", () => (el("mint-sub").textContent = sub.value.trim()));
  el("mint").addEventListener("click", () => void mint());
  el("use-token").addEventListener("click", () =>
    void useToken(el<HTMLTextAreaElement>("token").value),
  );
  el("upload").addEventListener("click", () => void upload());
  el("refresh").addEventListener("click", () => void refresh());

  try {
    const answer = await fetch("/local/config", { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    config = (await answer.json()) as Config;
  } catch (error) {
    status(`/local/config: ${describe(error)} (is this filegate in local mode?)`, "error");
    return;
  }
  const auth: Interceptor = (next) => (request) => {
    if (token) request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  client = createClient(
    FileGatewayService,
    createGrpcWebTransport({ baseUrl: config.grpc_web_url, useBinaryFormat: true, interceptors: [auth] }),
  );
  document.body.dataset.ready = "true";
  status(`gRPC-Web at ${config.grpc_web_url}, Filestack at ${config.filestack_url}: mint or paste a token`);
}

void start();
