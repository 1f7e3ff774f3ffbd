#!/usr/bin/python3
"""A fake Kubernetes API server for tests (stdlib only; PyYAML used if present).

It speaks the subset of the real protocol that a list/watch client (client-go's
reflector, kubectl, the python client) uses, for the kinds the waypoint reads:

  * HTTPS (TLS 1.2+, HTTP/1.1), bearer-token authentication (token file re-read
    on every request), 401/403/404 as `Status` objects like kube-apiserver.
  * discovery (/api, /apis, /api/v1, /apis/G, /apis/G/V), /version, /healthz.
  * LIST with limit/continue (consistent snapshot per list; continue tokens
    have the real base64 {"v","rv","start"} shape and expire with 410),
    labelSelector, fieldSelector (metadata.name / metadata.namespace).
  * WATCH: chunked newline-delimited JSON events replayed from a global
    resourceVersion history, BOOKMARK events, timeoutSeconds, 410 "too old
    resource version" (ERROR event by default, or HTTP 410), 504 "Too large
    resource version" after waiting 3 s for a future RV, sendInitialEvents.
  * Faults for tests: per-kind HTTP status (403 Forbidden, 404 "CRD not
    installed", 429, 500, 503), dropping/stalling every open watch,
    compaction, restart on the same port with state kept.

Control API (same port, same bearer token) is documented in fake_apiserver.md.

Run:  /usr/bin/python3 fake_apiserver.py --cert C --key K --token-file F [--port 0]
First stdout line: "LISTENING <port>".
"""

import argparse
import base64
import bisect
import collections
import datetime
import gzip
import http.server
import json
import random
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

try:  # Debian python3-yaml; optional
    import yaml  # type: ignore
except Exception:  # pragma: no cover
    yaml = None

_raw_shutdown = socket.socket.__mro__[1].shutdown  # _socket.socket.shutdown: bypasses SSLSocket


# --------------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------------

class KindInfo:
    def __init__(self, plural, kind, singular, group, versions, builtin, short_names, categories):
        self.plural = plural
        self.kind = kind
        self.singular = singular
        self.group = group                # "" for the core group
        self.versions = versions          # served versions, preferred first
        self.builtin = builtin            # typed (compiled-in) kind vs CRD (unstructured)
        self.short_names = short_names
        self.categories = categories

    def api_version(self, version=None):
        v = version or self.versions[0]
        return v if not self.group else "%s/%s" % (self.group, v)


KINDS = [
    KindInfo("endpoints", "Endpoints", "endpoints", "", ["v1"], True, ["ep"], []),
    KindInfo("pods", "Pod", "pod", "", ["v1"], True, ["po"], ["all"]),
    KindInfo("services", "Service", "service", "", ["v1"], True, ["svc"], ["all"]),
    KindInfo("endpointslices", "EndpointSlice", "endpointslice", "discovery.k8s.io", ["v1"], True, [], []),
    KindInfo("virtualservices", "VirtualService", "virtualservice", "networking.istio.io",
             ["v1", "v1beta1", "v1alpha3"], False, ["vs"], ["istio-io", "networking-istio-io"]),
    KindInfo("destinationrules", "DestinationRule", "destinationrule", "networking.istio.io",
             ["v1", "v1beta1", "v1alpha3"], False, ["dr"], ["istio-io", "networking-istio-io"]),
    KindInfo("authorizationpolicies", "AuthorizationPolicy", "authorizationpolicy", "security.istio.io",
             ["v1", "v1beta1"], False, ["ap"], ["istio-io", "security-istio-io"]),
    KindInfo("gateways", "Gateway", "gateway", "gateway.networking.k8s.io",
             ["v1", "v1beta1"], False, ["gtw"], ["gateway-api"]),
    KindInfo("httproutes", "HTTPRoute", "httproute", "gateway.networking.k8s.io",
             ["v1", "v1beta1"], False, [], ["gateway-api"]),
    KindInfo("grpcroutes", "GRPCRoute", "grpcroute", "gateway.networking.k8s.io",
             ["v1", "v1alpha2"], False, [], ["gateway-api"]),
]
BY_PLURAL = {k.plural: k for k in KINDS}
GROUP_ORDER = ["discovery.k8s.io", "gateway.networking.k8s.io", "networking.istio.io", "security.istio.io"]


def kind_for_object(obj):
    """KindInfo for an object, from apiVersion (group) + kind; apiVersion may be omitted."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    group = None
    if api_version:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    for k in KINDS:
        if k.kind == kind and (group is None or k.group == group):
            return k
    return None


def find_kind(ident):
    """KindInfo from a plural ("pods"), a kind ("Pod") or a dict with kind/apiVersion/plural."""
    if isinstance(ident, dict):
        if ident.get("plural"):
            return BY_PLURAL.get(ident["plural"])
        return kind_for_object(ident)
    if ident in BY_PLURAL:
        return BY_PLURAL[ident]
    for k in KINDS:
        if k.kind == ident or k.kind.lower() == str(ident).lower():
            return k
    return None


# --------------------------------------------------------------------------------------------
# Serialisation (compact JSON, Go-style escaping of <, >, &, U+2028, U+2029)
# --------------------------------------------------------------------------------------------

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def dumps(value, sort_keys=False):
    s = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    if _GO_ESCAPE_RE.search(s):
        s = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], s)
    return s.encode("utf-8")


_META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
               "annotations", "ownerReferences", "finalizers", "managedFields"]


def _ordered_metadata(md):
    out = {}
    for k in _META_ORDER:
        if k in md:
            out[k] = md[k]
    for k, v in md.items():
        if k not in out:
            out[k] = v
    return out


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code, reason, message, details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
            422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


class StoredObject:
    """One stored object version. The dict is never mutated once stored."""
    __slots__ = ("info", "d", "ns", "name", "rv", "labels", "_cache")

    def __init__(self, info, d):
        self.info = info
        self.d = d
        md = d["metadata"]
        self.ns = md.get("namespace", "")
        self.name = md["name"]
        self.rv = int(md["resourceVersion"])
        self.labels = md.get("labels") or {}
        self._cache = {}

    def body(self):
        """The object without kind/apiVersion (a typed list item)."""
        return {k: v for k, v in self.d.items() if k not in ("kind", "apiVersion")}

    def full(self, version=None):
        """bytes of the object with kind and apiVersion, as served at `version`."""
        key = ("full", version or self.info.versions[0])
        b = self._cache.get(key)
        if b is None:
            av = self.info.api_version(key[1])
            if self.info.builtin:
                item = self.item(version)
                b = b'{"kind":' + dumps(self.info.kind) + b',"apiVersion":' + dumps(av) + b"," + item[1:]
            else:
                d = dict(self.d)
                d["apiVersion"] = av
                d["kind"] = self.info.kind
                b = dumps(d, sort_keys=True)   # unstructured: Go maps encode with sorted keys
            self._cache[key] = b
        return b

    def item(self, version=None):
        """bytes of the object as a list item: typed lists carry no kind/apiVersion; CR lists do."""
        if not self.info.builtin:
            return self.full(version)
        b = self._cache.get("item")
        if b is None:
            b = dumps(self.body())
            self._cache["item"] = b
        return b

    def with_rv(self, rv):
        d = dict(self.d)
        md = dict(d["metadata"])
        md["resourceVersion"] = str(rv)
        d["metadata"] = md
        return StoredObject(self.info, d)


class Event:
    __slots__ = ("type", "obj", "rv", "_lines")

    def __init__(self, etype, obj, rv):
        self.type = etype
        self.obj = obj
        self.rv = rv
        self._lines = {}

    def line(self, version):
        b = self._lines.get(version)
        if b is None:
            b = b'{"type":"' + self.type.encode() + b'","object":' + self.obj.full(version) + b"}\n"
            self._lines[version] = b
        return b


def bookmark_line(info, version, rv, initial_events_end=False):
    av = info.api_version(version)
    if info.builtin:
        md = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_events_end:
            md = {"resourceVersion": str(rv), "creationTimestamp": None,
                  "annotations": {"k8s.io/initial-events-end": "true"}}
        obj = {"kind": info.kind, "apiVersion": av, "metadata": md}
        # an empty typed object, as the watch cache builds it (Go zero values)
        if info.kind == "Pod":
            obj["spec"] = {"containers": None}
            obj["status"] = {}
        elif info.kind == "Service":
            obj["spec"] = {}
            obj["status"] = {"loadBalancer": {}}
        elif info.kind == "EndpointSlice":
            obj["addressType"] = ""
            obj["endpoints"] = None
        b = dumps(obj)
    else:
        md = {"resourceVersion": str(rv)}
        if initial_events_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        b = dumps({"apiVersion": av, "kind": info.kind, "metadata": md}, sort_keys=True)
    return b'{"type":"BOOKMARK","object":' + b + b"}\n"


def error_event_line(status):
    return b'{"type":"ERROR","object":' + dumps(status) + b"}\n"


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------

class SelectorError(ValueError):
    pass


_LABEL_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"


def parse_label_selector(s):
    """Returns a predicate on a labels dict. Supports =, ==, !=, in, notin, exists, !exists."""
    s = (s or "").strip()
    if not s:
        return None
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    preds = []
    for t in terms:
        t = t.strip()
        m = re.fullmatch(r"(%s)\s+(in|notin)\s+\(([^)]*)\)" % _LABEL_KEY, t)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                preds.append(lambda l, k=key, v=vals: l.get(k) in v)
            else:
                preds.append(lambda l, k=key, v=vals: l.get(k) not in v)
            continue
        m = re.fullmatch(r"(%s)\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)" % _LABEL_KEY, t)
        if m:
            key, op, val = m.group(1), m.group(2), m.group(3)
            if op == "!=":
                preds.append(lambda l, k=key, v=val: l.get(k) != v)
            else:
                preds.append(lambda l, k=key, v=val: l.get(k) == v)
            continue
        m = re.fullmatch(r"!\s*(%s)" % _LABEL_KEY, t)
        if m:
            preds.append(lambda l, k=m.group(1): k not in l)
            continue
        m = re.fullmatch(_LABEL_KEY, t)
        if m:
            preds.append(lambda l, k=t: k in l)
            continue
        raise SelectorError("unable to parse requirement: %r" % t)
    return lambda labels: all(p(labels) for p in preds)


def parse_field_selector(s):
    s = (s or "").strip()
    if not s:
        return None
    preds = []
    for t in s.split(","):
        m = re.fullmatch(r"\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*", t)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (s, t))
        field, op, val = m.groups()
        if field == "metadata.name":
            get = lambda o: o.name
        elif field == "metadata.namespace":
            get = lambda o: o.ns
        else:
            raise SelectorError('field label not supported: %s' % field)
        if op == "!=":
            preds.append(lambda o, g=get, v=val: g(o) != v)
        else:
            preds.append(lambda o, g=get, v=val: g(o) == v)
    return lambda o: all(p(o) for p in preds)


def go_parse_bool(s):
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(s)


# --------------------------------------------------------------------------------------------
# Watchers
# --------------------------------------------------------------------------------------------

class InitialEventsEnd:
    """Queue marker: the BOOKMARK that ends the initial events of a sendInitialEvents watch."""
    __slots__ = ("rv",)

    def __init__(self, rv):
        self.rv = rv


class Watcher:
    _ids = 0

    def __init__(self, info, ns, label_pred, field_pred, version, bookmarks, deadline):
        Watcher._ids += 1
        self.id = Watcher._ids
        self.info = info
        self.ns = ns
        self.label_pred = label_pred
        self.field_pred = field_pred
        self.version = version
        self.bookmarks = bookmarks
        self.deadline = deadline
        self.queue = collections.deque()   # Event, or InitialEventsEnd (sendInitialEvents)
        self.conn = None
        self.dropped = False           # abrupt close requested
        self.graceful = False          # clean end (terminating chunk) requested

    def matches(self, obj):
        if self.ns is not None and obj.ns != self.ns:
            return False
        if self.label_pred is not None and not self.label_pred(obj.labels):
            return False
        if self.field_pred is not None and not self.field_pred(obj):
            return False
        return True


# --------------------------------------------------------------------------------------------
# The server state
# --------------------------------------------------------------------------------------------

class ApplyError(ValueError):
    pass


class FakeApiServer:
    """State + HTTPS front end. The state survives stop()/start() (an API server restart)."""

    def __init__(self, certfile, keyfile, port=0, token=None, token_file=None,
                 bookmark_interval=1.0, expired_as_http=False, chunking="go", history_limit=0,
                 continue_ttl=300.0, default_watch_timeout=1800.0, gzip_threshold=128 * 1024,
                 server_version="v1.30.0-fake", user="system:serviceaccount:default:waypoint",
                 managed_fields=True, rv_start=1000, verbose=False):
        self.certfile = certfile
        self.keyfile = keyfile
        self.port = port
        self.token = token
        self.token_file = token_file
        self.bookmark_interval = bookmark_interval
        self.expired_as_http = expired_as_http
        self.chunking = chunking
        self.history_limit = history_limit
        self.continue_ttl = continue_ttl
        self.default_watch_timeout = default_watch_timeout
        self.gzip_threshold = gzip_threshold
        self.server_version = server_version
        self.user = user
        self.managed_fields = managed_fields
        self.verbose = verbose

        self.lock = threading.RLock()
        self.cv = threading.Condition(self.lock)
        self.rv = rv_start                 # global resourceVersion counter (etcd revision)
        self.floor = rv_start              # watch from RV < floor -> 410 (compacted)
        self.objects = {k.plural: {} for k in KINDS}        # plural -> {(ns, name): StoredObject}
        self.history = {k.plural: [] for k in KINDS}        # plural -> [Event] (ascending rv)
        self.watchers = {k.plural: set() for k in KINDS}
        self.snapshots = collections.OrderedDict()          # continue snapshots
        self.faults = {}                   # plural -> {"status": int, "verbs": set|None}
        self.stalled = False
        self.down = False

        self._httpd = None
        self._thread = None
        self._conns = set()
        self._ssl_ctx = None
        self._reset_stats()

    # ---- stats -----------------------------------------------------------------------------

    def _reset_stats(self):
        self.stats_lists = collections.Counter()
        self.stats_list_pages = collections.Counter()
        self.stats_watches_opened = collections.Counter()
        self.stats_gets = collections.Counter()
        self.stats_requests = collections.Counter()
        self.stats_auth_ok = 0
        self.stats_auth_rejected = 0
        self.stats_last_auth = None
        self.stats_restarts = 0
        self.stats_dropped = 0
        self.stats_connections = 0
        self.request_log = collections.deque(maxlen=500)

    def stats(self):
        with self.lock:
            return {
                "resourceVersion": str(self.rv),
                "compactedResourceVersion": str(self.floor),
                "objects": {p: len(o) for p, o in self.objects.items()},
                "lists": dict(self.stats_lists),
                "list_pages": dict(self.stats_list_pages),
                "gets": dict(self.stats_gets),
                "watches_opened": dict(self.stats_watches_opened),
                "watches_active": {p: len(w) for p, w in self.watchers.items() if w},
                "watches_active_total": sum(len(w) for w in self.watchers.values()),
                "requests": dict(self.stats_requests),
                "auth": {"ok": self.stats_auth_ok, "rejected": self.stats_auth_rejected,
                         "last": self.stats_last_auth},
                "connections_accepted": self.stats_connections,
                "connections_open": len(self._conns),
                "restarts": self.stats_restarts,
                "watches_dropped": self.stats_dropped,
                "faults": {p: {"status": f["status"], "verbs": sorted(f["verbs"]) if f["verbs"] else None}
                           for p, f in self.faults.items()},
                "stalled": self.stalled,
                "chunking": self.chunking,
                "expired_as_http": self.expired_as_http,
                "bookmark_interval": self.bookmark_interval,
                "log": list(self.request_log),
            }

    # ---- auth ------------------------------------------------------------------------------

    def current_token(self):
        if self.token_file:
            try:
                with open(self.token_file, "r") as f:
                    return f.read().strip()
            except OSError:
                return None
        return self.token

    def auth_required(self):
        return bool(self.token_file) or self.token is not None

    # ---- object store ----------------------------------------------------------------------

    def _next_rv(self):
        self.rv += 1
        return self.rv

    def _emit(self, info, etype, obj):
        ev = Event(etype, obj, obj.rv)
        hist = self.history[info.plural]
        hist.append(ev)
        if self.history_limit and len(hist) > self.history_limit:
            drop = len(hist) - self.history_limit
            self.floor = max(self.floor, hist[drop - 1].rv)
            del hist[:drop]
        for w in self.watchers[info.plural]:
            if w.matches(obj):
                w.queue.append(ev)
        self.cv.notify_all()

    @staticmethod
    def _normalise_input(obj):
        if not isinstance(obj, dict):
            raise ApplyError("object must be a JSON object, got %s" % type(obj).__name__)
        md = obj.get("metadata")
        if not isinstance(md, dict) or not md.get("name"):
            raise ApplyError("metadata.name is required")

    def apply(self, objs, default_namespace="default"):
        """Create or replace objects. Returns [{kind, namespace, name, resourceVersion, result}]."""
        if isinstance(objs, dict):
            objs = objs.get("items", []) if objs.get("kind") == "List" else [objs]
        results = []
        with self.lock:
            prepared = []
            for o in objs:
                self._normalise_input(o)
                info = kind_for_object(o)
                if info is None:
                    raise ApplyError("unknown kind %r (apiVersion %r)" % (o.get("kind"), o.get("apiVersion")))
                prepared.append((info, o))
            for info, o in prepared:
                results.append(self._apply_one(info, o, default_namespace))
        return results

    def _apply_one(self, info, o, default_namespace):
        md_in = o["metadata"]
        ns = md_in.get("namespace") or default_namespace
        name = md_in["name"]
        key = (ns, name)
        store = self.objects[info.plural]
        old = store.get(key)

        d = {"kind": info.kind, "apiVersion": info.api_version()}
        for k, v in o.items():
            if k not in ("kind", "apiVersion", "metadata"):
                d[k] = v
        md = {k: v for k, v in md_in.items()
              if k not in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                           "selfLink")}
        md["namespace"] = ns
        if old is not None:
            omd = old.d["metadata"]
            md["uid"] = omd["uid"]
            md["creationTimestamp"] = omd["creationTimestamp"]
            if "generation" in omd:
                gen = omd["generation"]
                if old.d.get("spec") != o.get("spec"):
                    gen += 1
                md["generation"] = gen
            # unchanged object: a no-op update, as kube-apiserver does (no new RV, no event)
            old_cmp = {k: v for k, v in old.d.items() if k not in ("metadata", "kind", "apiVersion")}
            new_cmp = {k: v for k, v in d.items() if k not in ("kind", "apiVersion")}
            omd_cmp = {k: v for k, v in omd.items()
                       if k not in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")}
            md_cmp = {k: v for k, v in md.items() if k not in ("uid", "creationTimestamp", "generation")}
            if old_cmp == new_cmp and omd_cmp == md_cmp:
                return {"kind": info.kind, "namespace": ns, "name": name,
                        "resourceVersion": str(old.rv), "result": "unchanged"}
        else:
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            if not info.builtin:
                md["generation"] = 1
        rv = self._next_rv()
        md["resourceVersion"] = str(rv)
        if self.managed_fields:
            md["managedFields"] = [{"manager": "fake-apiserver", "operation": "Update",
                                    "apiVersion": info.api_version(), "time": now_rfc3339(),
                                    "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
        out = {"kind": d.pop("kind"), "apiVersion": d.pop("apiVersion"), "metadata": _ordered_metadata(md)}
        out.update(d)
        so = StoredObject(info, out)
        so.item()   # serialise once now: LIST is then a join
        store[key] = so
        self._emit(info, "MODIFIED" if old is not None else "ADDED", so)
        return {"kind": info.kind, "namespace": ns, "name": name, "resourceVersion": str(rv),
                "result": "updated" if old is not None else "created"}

    def delete(self, refs, default_namespace="default"):
        """Delete objects given as {kind|plural, name, namespace} (or full objects)."""
        if isinstance(refs, dict):
            refs = [refs]
        results = []
        with self.lock:
            for r in refs:
                if not isinstance(r, dict):
                    raise ApplyError("delete wants objects {kind, name, namespace}")
                info = find_kind(r)
                md = r.get("metadata") or {}
                name = r.get("name") or md.get("name")
                ns = r.get("namespace") or md.get("namespace") or default_namespace
                if info is None or not name:
                    raise ApplyError("delete needs a known kind (or plural) and a name: %r" % r)
                old = self.objects[info.plural].pop((ns, name), None)
                if old is None:
                    results.append({"kind": info.kind, "namespace": ns, "name": name, "result": "notfound"})
                    continue
                rv = self._next_rv()
                # the DELETED event carries the last state with the deletion's resourceVersion
                gone = old.with_rv(rv)
                self._emit(info, "DELETED", gone)
                results.append({"kind": info.kind, "namespace": ns, "name": name,
                                "resourceVersion": str(rv), "result": "deleted"})
        return results

    def get_objects(self, plural, namespace=None):
        with self.lock:
            objs = [o.d for (ns, _), o in sorted(self.objects[plural].items()) if namespace in (None, ns)]
        return json.loads(json.dumps(objs))

    def compact(self):
        """Forget the history: a watch from any RV older than now gets 410; continue tokens expire."""
        with self.lock:
            self.floor = self.rv
            for h in self.history.values():
                h.clear()
            self.snapshots.clear()
            return self.rv

    def drop_watches(self):
        """Close every open watch connection abruptly (no terminating chunk)."""
        with self.lock:
            ws = [w for s in self.watchers.values() for w in s]
            for w in ws:
                w.dropped = True
                if w.conn is not None:
                    try:
                        _raw_shutdown(w.conn, socket.SHUT_RDWR)
                    except OSError:
                        pass
            self.stats_dropped += len(ws)
            self.cv.notify_all()
        return len(ws)

    def end_watches(self):
        """End every open watch cleanly (terminating chunk), like a server-side timeout."""
        with self.lock:
            ws = [w for s in self.watchers.values() for w in s]
            for w in ws:
                w.graceful = True
            self.cv.notify_all()
        return len(ws)

    def stall_watches(self, on=True):
        with self.lock:
            self.stalled = bool(on)
            self.cv.notify_all()

    def set_fault(self, plural, status, verbs=None):
        info = find_kind(plural)
        if info is None:
            raise ApplyError("unknown plural %r" % plural)
        with self.lock:
            if not status:
                self.faults.pop(info.plural, None)
            else:
                self.faults[info.plural] = {"status": int(status), "verbs": set(verbs) if verbs else None}
            if status == 404 and not verbs:
                # "the CRD was removed": its watches end, as kube-apiserver ends them
                for w in self.watchers[info.plural]:
                    w.graceful = True
            self.cv.notify_all()

    def fault_for(self, plural, verb):
        f = self.faults.get(plural)
        if f and (f["verbs"] is None or verb in f["verbs"]):
            return f["status"]
        return 0

    def installed(self, info):
        f = self.faults.get(info.plural)
        return not (f and f["status"] == 404 and f["verbs"] is None)

    # ---- HTTP lifecycle --------------------------------------------------------------------

    def _make_ssl_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.certfile, self.keyfile)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def start(self):
        if self._ssl_ctx is None:
            self._ssl_ctx = self._make_ssl_ctx()
        deadline = time.monotonic() + 10
        while True:
            try:
                httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        httpd.fake = self
        self.port = httpd.server_address[1]
        with self.lock:
            self.down = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-apiserver-accept", daemon=True)
        self._thread.start()
        return self.port

    def stop(self, graceful=False):
        """Close the listener and every connection (watches end abruptly unless graceful)."""
        httpd = self._httpd
        if httpd is None:
            return
        with self.lock:
            self.down = True
            for s in self.watchers.values():
                for w in s:
                    if graceful:
                        w.graceful = True
                    else:
                        w.dropped = True
            self.cv.notify_all()
        if graceful:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                with self.lock:
                    if not any(self.watchers.values()):
                        break
                time.sleep(0.01)
        httpd.shutdown()
        httpd.server_close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                _raw_shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def restart(self, down_ms=0, graceful=False):
        self.stop(graceful=graceful)
        with self.lock:
            self.stats_restarts += 1
        if down_ms:
            time.sleep(down_ms / 1000.0)
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


def _discovery_resource(info):
    r = {"name": info.plural, "singularName": info.singular, "namespaced": True, "kind": info.kind,
         "verbs": ["get", "list", "watch"]}
    if info.short_names:
        r["shortNames"] = info.short_names
    if info.categories:
        r["categories"] = info.categories
    return r


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    # ---- connection set-up: TLS handshake in the connection's own thread ------------------

    def setup(self):
        fake = self.server.fake
        raw = self.request
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as Go's net/http
        raw.settimeout(10)
        self.request = fake._ssl_ctx.wrap_socket(raw, server_side=True)
        self.request.settimeout(None)
        with fake.lock:
            fake._conns.add(self.request)
            fake.stats_connections += 1
        super().setup()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        fake = self.server.fake
        with fake.lock:
            fake._conns.discard(self.request)
        try:
            self.request.close()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fake-apiserver: %s\n" % (fmt % args))

    def send_response(self, code, message=None):
        # no "Server:" header (kube-apiserver sends none)
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())
        self._status = code

    # ---- responses -------------------------------------------------------------------------

    def _common_headers(self):
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")

    def _send_bytes(self, code, body, ctype="application/json", extra=None):
        if self._req_body_pending():
            self.close_connection = True
        gz = False
        fake = self.server.fake
        if (fake.gzip_threshold and len(body) >= fake.gzip_threshold
                and "gzip" in (self.headers.get("Accept-Encoding") or "")):
            body = gzip.compress(body, compresslevel=1)
            gz = True
        self.send_response(code)
        self._common_headers()
        self.send_header("Content-Type", ctype)
        if gz:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self._log_done(code)

    def _send_json(self, code, obj, extra=None):
        self._send_bytes(code, dumps(obj), extra=extra)

    def _send_status(self, code, message, reason=None, details=None, extra=None):
        self._send_json(code, status_object(code, reason or _REASONS.get(code, "Unknown"), message, details),
                        extra=extra)

    def _log_done(self, code):
        fake = self.server.fake
        with fake.lock:
            fake.request_log.append({"method": self.command, "path": self._path, "query": self._query_raw,
                                     "status": code, "auth": self._auth_state})

    def _req_body_pending(self):
        return getattr(self, "_body_unread", False)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        self._body_unread = False
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(n) if n else b""

    # ---- dispatch --------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        fake = self.server.fake
        u = urllib.parse.urlsplit(self.path)
        self._path = u.path
        self._query_raw = u.query
        self._auth_state = None
        self._status = 0
        self._body_unread = (int(self.headers.get("Content-Length") or 0) > 0
                             or self.headers.get("Transfer-Encoding", "").lower() == "chunked")
        params = {}
        for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True):
            params.setdefault(k, v)
        path = u.path.rstrip("/") or "/"
        with fake.lock:
            prefix = "/".join(path.split("/")[:7])
            fake.stats_requests["%s %s" % (self.command, prefix)] += 1
        try:
            if self.command in ("POST", "PUT", "PATCH"):
                body = self._read_body()
            else:
                body = b""
                if self._body_unread:
                    self._read_body()
            if not self._authenticate(path):
                return
            if path.startswith("/fake/") or path == "/fake":
                return self._control(path, params, body)
            if path in ("/healthz", "/livez", "/readyz"):
                return self._send_bytes(200, b"ok", ctype="text/plain; charset=utf-8")
            if self.command != "GET":
                return self._send_status(405, "the server does not allow this method on the requested resource",
                                         details={})
            if path == "/version":
                return self._send_json(200, self._version())
            if not self._accept_ok():
                return self._send_status(406, "only the following media types are accepted: application/json")
            if path == "/api":
                return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                             "serverAddressByClientCIDRs": [
                                                 {"clientCIDR": "0.0.0.0/0",
                                                  "serverAddress": "127.0.0.1:%d" % fake.port}]})
            if path == "/apis":
                return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                             "groups": self._groups()})
            parts = path.strip("/").split("/")
            if parts[0] == "apis" and len(parts) == 2:
                for g in self._groups():
                    if g["name"] == parts[1]:
                        return self._send_json(200, dict({"kind": "APIGroup", "apiVersion": "v1"}, **g))
                return self._not_found()
            if (parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3):
                group = "" if parts[0] == "api" else parts[1]
                version = parts[-1]
                res = [_discovery_resource(k) for k in KINDS
                       if k.group == group and version in k.versions and fake.installed(k)]
                if not res:
                    return self._not_found()
                gv = version if not group else "%s/%s" % (group, version)
                doc = {"kind": "APIResourceList", "groupVersion": gv, "resources": res}
                if group:
                    doc = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}
                return self._send_json(200, doc)
            return self._resource(parts, params)
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except OSError:
            self.close_connection = True

    def _authenticate(self, path):
        fake = self.server.fake
        hdr = self.headers.get("Authorization")
        if not fake.auth_required():
            self._auth_state = "none-required"
            return True
        valid = False
        tok = fake.current_token()
        if hdr:
            parts = hdr.strip().split(" ", 1)
            if len(parts) == 2 and parts[0].lower() == "bearer" and tok:
                valid = parts[1].strip() == tok
        self._auth_state = "ok" if valid else ("invalid" if hdr else "missing")
        if not path.startswith("/fake/"):      # the control API does not count
            with fake.lock:
                fake.stats_last_auth = {"present": bool(hdr), "valid": valid, "path": path}
                if valid:
                    fake.stats_auth_ok += 1
                else:
                    fake.stats_auth_rejected += 1
        if not valid:
            self._send_status(401, "Unauthorized")
            return False
        return True

    def _accept_ok(self):
        acc = self.headers.get("Accept")
        if not acc:
            return True
        # JSON only: protobuf/CBOR clients (client-go) list application/json as a fallback
        for part in acc.split(","):
            if part.split(";")[0].strip().lower() in ("application/json", "*/*", "application/*"):
                return True
        return False

    def _version(self):
        v = self.server.fake.server_version
        m = re.match(r"v(\d+)\.(\d+)", v)
        return {"major": m.group(1) if m else "1", "minor": m.group(2) if m else "30", "gitVersion": v,
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2", "compiler": "gc",
                "platform": "linux/amd64"}

    def _groups(self):
        fake = self.server.fake
        out = []
        for g in GROUP_ORDER:
            versions = []
            for k in KINDS:
                if k.group == g and fake.installed(k):
                    for v in k.versions:
                        if v not in versions:
                            versions.append(v)
            if not versions:
                continue
            order = {"v1": 0, "v1beta1": 1, "v1alpha3": 2, "v1alpha2": 3}
            versions.sort(key=lambda v: order.get(v, 9))
            gvs = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in versions]
            out.append({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
        return out

    def _not_found(self):
        return self._send_status(404, "the server could not find the requested resource")

    # ---- resources -------------------------------------------------------------------------

    def _resource(self, parts, params):
        fake = self.server.fake
        if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return self._not_found()
        legacy_watch = False
        if rest and rest[0] == "watch":
            legacy_watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2:
            return self._not_found()
        plural = rest[0]
        name = rest[1] if len(rest) == 2 else None
        info = BY_PLURAL.get(plural)
        if info is None or info.group != group or version not in info.versions:
            return self._not_found()
        if not fake.installed(info):
            return self._not_found()
        try:
            watch = legacy_watch or go_parse_bool(params.get("watch", "false") or "false")
        except ValueError:
            return self._send_status(400, 'strconv.ParseBool: parsing "%s": invalid syntax' % params.get("watch"))
        verb = "watch" if watch else ("get" if name else "list")
        code = fake.fault_for(info.plural, verb)
        if code:
            return self._fault(code, info, verb, ns)
        if name is not None and not watch:
            return self._get(info, version, ns, name)
        if name is not None:
            params = dict(params)
            params["fieldSelector"] = ",".join(x for x in [params.get("fieldSelector"), "metadata.name=" + name] if x)
        try:
            label_pred = parse_label_selector(params.get("labelSelector"))
            field_pred = parse_field_selector(params.get("fieldSelector"))
        except SelectorError as e:
            return self._send_status(400, str(e))
        if watch:
            return self._watch(info, version, ns, params, label_pred, field_pred)
        return self._list(info, version, ns, params, label_pred, field_pred)

    def _fault(self, code, info, verb, ns):
        fake = self.server.fake
        if code == 403:
            where = ' in the namespace "%s"' % ns if ns else " at the cluster scope"
            msg = ('%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s"%s'
                   % (info.plural if not info.group else "%s.%s" % (info.plural, info.group),
                      fake.user, verb, info.plural, info.group, where))
            details = {"kind": info.plural}
            if info.group:
                details = {"group": info.group, "kind": info.plural}
            return self._send_status(403, msg, details=details)
        if code == 404:
            return self._not_found()
        if code == 429:
            return self._send_status(429, "Too many requests, please try again later.",
                                     details={"retryAfterSeconds": 1}, extra={"Retry-After": "1"})
        if code == 503:
            return self._send_status(503, "service unavailable", details={"retryAfterSeconds": 1},
                                     extra={"Retry-After": "1"})
        return self._send_status(code, "fault injected by the fake API server (%d)" % code)

    def _get(self, info, version, ns, name):
        fake = self.server.fake
        with fake.lock:
            fake.stats_gets[info.plural] += 1
            o = fake.objects[info.plural].get((ns, name)) if ns is not None else None
        if o is None:
            what = info.plural if not info.group else "%s.%s" % (info.plural, info.group)
            details = {"name": name, "kind": info.plural}
            if info.group:
                details = {"name": name, "group": info.group, "kind": info.plural}
            return self._send_status(404, '%s "%s" not found' % (what, name), details=details)
        return self._send_bytes(200, o.full(version))

    def _wait_for_rv(self, params):
        """A LIST/WATCH with a resourceVersion newer than ours waits up to 3 s, then 504 (as the watch cache)."""
        fake = self.server.fake
        rv_s = params.get("resourceVersion", "")
        if rv_s in ("", "0"):
            return None, None
        try:
            rv = int(rv_s)
            if rv < 0:
                raise ValueError
        except ValueError:
            return None, status_object(400, "BadRequest", 'invalid resource version: "%s"' % rv_s)
        with fake.cv:
            if rv > fake.rv:
                fake.cv.wait_for(lambda: fake.rv >= rv, timeout=3.0)
            if rv > fake.rv:
                return rv, status_object(504, "Timeout", "Too large resource version: %d, current: %d" % (rv, fake.rv),
                                         details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                              "message": "Too large resource version"}],
                                                  "retryAfterSeconds": 1})
        return rv, None

    def _list(self, info, version, ns, params, label_pred, field_pred):
        fake = self.server.fake
        limit = 0
        if params.get("limit"):
            try:
                limit = int(params["limit"])
            except ValueError:
                return self._send_status(400, "invalid limit %r" % params["limit"])
            limit = max(limit, 0)
        cont = params.get("continue", "")
        if not cont:
            _, err = self._wait_for_rv(params)
            if err is not None:
                return self._send_json(err["code"], err)
        sel_key = (info.plural, ns, params.get("labelSelector", ""), params.get("fieldSelector", ""))
        with fake.lock:
            fake.stats_list_pages[info.plural] += 1
            if cont:
                try:
                    tok = json.loads(base64.b64decode(cont + "=" * (-len(cont) % 4)).decode())
                    if tok.get("v") != "meta.k8s.io/v1" or not isinstance(tok.get("rv"), int):
                        raise ValueError
                    start = tok.get("start", "")
                    if start.endswith("\x00"):
                        start = start[:-1]
                except Exception:
                    return self._send_status(400, "continue key is not valid: incorrect encoded start "
                                                  "resourceVersion (version meta.k8s.io/v1)")
                rv = tok["rv"]
                snap = fake.snapshots.get(sel_key + (rv,))
                if snap is None or time.monotonic() - snap[0] > fake.continue_ttl or rv < fake.floor:
                    fake.snapshots.pop(sel_key + (rv,), None)
                    return self._send_status(
                        410, "The provided continue parameter is too old to display a consistent list result. "
                             "You can start a new list without the continue parameter, or use the continue "
                             "token in this response to retrieve the remainder of the results. Continuing "
                             "with the provided token results in an inconsistent list - objects that were "
                             "created, modified, or deleted between the time the first chunk was returned "
                             "and now may show up in the list.", reason="Expired")
                items = snap[1]
                keys = snap[2]
                i0 = bisect.bisect_right(keys, start)
            else:
                fake.stats_lists[info.plural] += 1
                rv = fake.rv
                store = fake.objects[info.plural]
                sel = []
                for (ons, oname), o in store.items():
                    if ns is not None and ons != ns:
                        continue
                    if label_pred is not None and not label_pred(o.labels):
                        continue
                    if field_pred is not None and not field_pred(o):
                        continue
                    sel.append(((oname if ns is not None else "%s/%s" % (ons, oname)), o))
                sel.sort(key=lambda t: t[0])
                keys = [k for k, _ in sel]
                items = [o for _, o in sel]
                i0 = 0
            i1 = len(items) if not limit else min(len(items), i0 + limit)
            page = items[i0:i1]
            more = i1 < len(items)
            token = None
            if more:
                if not cont:
                    fake.snapshots[sel_key + (rv,)] = (time.monotonic(), items, keys)
                    while len(fake.snapshots) > 64:
                        fake.snapshots.popitem(last=False)
                token = base64.b64encode(dumps({"v": "meta.k8s.io/v1", "rv": rv,
                                                "start": keys[i1 - 1] + "\x00"})).decode()
            remaining = len(items) - i1 if (more and not params.get("labelSelector")
                                              and not params.get("fieldSelector")) else None
        body_items = b",".join(o.item(version) for o in page)
        av = info.api_version(version)
        if info.builtin:
            md = {"resourceVersion": str(rv)}
            if token:
                md["continue"] = token
                if remaining is not None:
                    md["remainingItemCount"] = remaining
            head = b'{"kind":' + dumps(info.kind + "List") + b',"apiVersion":' + dumps(av) + \
                   b',"metadata":' + dumps(md) + b',"items":['
            body = head + body_items + b"]}"
        else:
            md = {"continue": token or "", "resourceVersion": str(rv)}
            if token and remaining is not None:
                md["remainingItemCount"] = remaining
            md = dict(sorted(md.items()))
            body = b'{"apiVersion":' + dumps(av) + b',"items":[' + body_items + b'],"kind":' + \
                   dumps(info.kind + "List") + b',"metadata":' + dumps(md) + b"}"
        return self._send_bytes(200, body)

    # ---- watch -----------------------------------------------------------------------------

    def _watch(self, info, version, ns, params, label_pred, field_pred):
        fake = self.server.fake
        try:
            bookmarks = go_parse_bool(params.get("allowWatchBookmarks", "false") or "false")
            send_initial = params.get("sendInitialEvents")
            send_initial = go_parse_bool(send_initial) if send_initial not in (None, "") else None
            timeout = params.get("timeoutSeconds")
            timeout = float(int(timeout)) if timeout not in (None, "") else None
        except ValueError:
            return self._send_status(400, "invalid watch parameters")
        if send_initial and not bookmarks:
            return self._send_status(422, "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: "
                                          "Forbidden: allowWatchBookmarks must be set to true when "
                                          "sendInitialEvents is set to true", reason="Invalid")
        if not timeout:
            # kube-apiserver: minRequestTimeout (1800 s) * [1, 2)
            timeout = fake.default_watch_timeout * (1.0 + random.random())
        rv_s = params.get("resourceVersion", "")
        rv, err = self._wait_for_rv(params)
        if err is not None and err["code"] == 400:
            return self._send_json(400, err)
        w = Watcher(info, ns, label_pred, field_pred, version, bookmarks, time.monotonic() + timeout)
        first_lines = []
        with fake.cv:
            fake.stats_watches_opened[info.plural] += 1
            if err is not None:                                    # too large RV
                first_lines = [error_event_line(err)]
                w.graceful = True
            elif send_initial or (rv_s in ("", "0") and send_initial is None):
                # current state as synthetic ADDED events, then changes
                for o in fake.objects[info.plural].values():
                    if w.matches(o):
                        w.queue.append(Event("ADDED", o, o.rv))
                if send_initial:
                    w.queue.append(InitialEventsEnd(fake.rv))
            elif rv_s in ("", "0"):
                pass                                               # sendInitialEvents=false: from now on
            elif rv < fake.floor:
                st = status_object(410, "Expired", "too old resource version: %d (%d)" % (rv, fake.floor))
                if fake.expired_as_http:
                    w = None
                else:
                    first_lines = [error_event_line(st)]
                    w.graceful = True
            else:
                hist = fake.history[info.plural]
                i = bisect.bisect_right([e.rv for e in hist], rv)
                for e in hist[i:]:
                    if w.matches(e.obj):
                        w.queue.append(e)
            if w is not None and not w.graceful:
                w.conn = self.request
                fake.watchers[info.plural].add(w)
        if w is None:
            return self._send_json(410, st)
        try:
            self._stream(w, first_lines)
        finally:
            with fake.lock:
                fake.watchers[info.plural].discard(w)

    def _write_chunks(self, data_list):
        """Write event lines as HTTP chunks, per the configured chunking mode."""
        mode = self.server.fake.chunking
        out = []
        if mode == "event":
            for d in data_list:
                out.append(b"%x\r\n%s\r\n" % (len(d), d))
        elif mode == "coalesce":
            d = b"".join(data_list)
            if d:
                out.append(b"%x\r\n%s\r\n" % (len(d), d))
        elif mode.startswith("split:"):
            n = max(1, int(mode.split(":", 1)[1]))
            d = b"".join(data_list)
            for i in range(0, len(d), n):
                c = d[i:i + n]
                out.append(b"%x\r\n%s\r\n" % (len(c), c))
        else:  # "go": net/http's 2048-byte bufio.Writer over the chunked writer, flushed per batch
            size, buf = 2048, b""
            for d in data_list:
                while len(d) > size - len(buf):
                    if not buf:
                        out.append(b"%x\r\n%s\r\n" % (len(d), d))
                        d = b""
                        break
                    take = size - len(buf)
                    buf += d[:take]
                    d = d[take:]
                    out.append(b"%x\r\n%s\r\n" % (len(buf), buf))
                    buf = b""
                buf += d
            if buf:
                out.append(b"%x\r\n%s\r\n" % (len(buf), buf))
        if out:
            self.wfile.write(b"".join(out))

    def _stream(self, w, first_lines):
        fake = self.server.fake
        headers_sent = False
        interval = fake.bookmark_interval
        next_bm = time.monotonic() + interval if (w.bookmarks and interval > 0) else float("inf")
        clean_end = False
        while True:
            with fake.cv:
                while True:
                    if w.dropped:
                        break
                    if fake.stalled:
                        fake.cv.wait(0.25)
                        continue
                    now = time.monotonic()
                    if (not headers_sent or w.queue or first_lines
                            or w.graceful or now >= w.deadline or now >= next_bm):
                        break
                    fake.cv.wait(max(0.0, min(w.deadline, next_bm) - now))
                if w.dropped:
                    self.close_connection = True
                    return
                batch = list(w.queue)
                w.queue.clear()
                cur_rv = fake.rv
                ending = w.graceful or time.monotonic() >= w.deadline
            if not headers_sent:
                self.send_response(200)
                self._common_headers()
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._log_done(200)
                headers_sent = True
            lines = list(first_lines)
            first_lines = []
            for e in batch:
                if isinstance(e, InitialEventsEnd):
                    lines.append(bookmark_line(w.info, w.version, e.rv, initial_events_end=True))
                else:
                    lines.append(e.line(w.version))
            now = time.monotonic()
            if now >= next_bm and not ending:
                lines.append(bookmark_line(w.info, w.version, cur_rv))
                interval = fake.bookmark_interval      # /fake/config may change it
                next_bm = now + interval if interval > 0 else float("inf")
            try:
                if lines:
                    self._write_chunks(lines)
                if ending:
                    self.wfile.write(b"0\r\n\r\n")
                    clean_end = True
            except OSError:
                self.close_connection = True
                return
            if w.dropped:
                self.close_connection = True
                return
            if clean_end:
                return

    # ---- control API -----------------------------------------------------------------------

    def _control(self, path, params, body):
        fake = self.server.fake
        op = path[len("/fake/"):]
        try:
            if op == "stats" and self.command == "GET":
                st = fake.stats()
                if params.get("log") in ("0", "false"):
                    st.pop("log")
                return self._send_json(200, st)
            if op == "objects" and self.command == "GET":
                info = find_kind(params.get("plural") or params.get("kind") or "")
                if info is None:
                    return self._send_status(400, "need ?plural=")
                return self._send_json(200, {"items": fake.get_objects(info.plural, params.get("namespace"))})
            if self.command != "POST":
                return self._send_status(405, "control endpoints take POST (GET for stats/objects)")
            if op == "apply":
                objs = _parse_documents(body)
                res = fake.apply(objs, default_namespace=params.get("namespace", "default"))
                return self._send_json(200, {"results": res, "resourceVersion": str(fake.rv)})
            if op == "delete":
                refs = _parse_documents(body)
                res = fake.delete(refs, default_namespace=params.get("namespace", "default"))
                return self._send_json(200, {"results": res, "resourceVersion": str(fake.rv)})
            if op == "compact":
                return self._send_json(200, {"compactedResourceVersion": str(fake.compact())})
            if op == "drop":
                return self._send_json(200, {"dropped": fake.drop_watches()})
            if op == "end":
                return self._send_json(200, {"ended": fake.end_watches()})
            if op == "stall":
                on = go_parse_bool(params.get("on", "1"))
                fake.stall_watches(on)
                return self._send_json(200, {"stalled": on})
            if op == "fault":
                spec = json.loads(body or b"{}")
                specs = spec if isinstance(spec, list) else [spec]
                for s in specs:
                    fake.set_fault(s.get("plural") or s.get("kind"), int(s.get("status") or 0), s.get("verbs"))
                return self._send_json(200, {"faults": fake.stats()["faults"]})
            if op == "config":
                cfg = json.loads(body or b"{}")
                with fake.lock:
                    if "bookmark_interval" in cfg:
                        fake.bookmark_interval = float(cfg["bookmark_interval"])
                    if "expired_as_http" in cfg:
                        fake.expired_as_http = bool(cfg["expired_as_http"])
                    if "chunking" in cfg:
                        _check_chunking(cfg["chunking"])
                        fake.chunking = cfg["chunking"]
                    if "history_limit" in cfg:
                        fake.history_limit = int(cfg["history_limit"])
                    if "token" in cfg:
                        fake.token = cfg["token"]
                return self._send_json(200, {"ok": True})
            if op == "reset-stats":
                with fake.lock:
                    fake._reset_stats()
                return self._send_json(200, {"ok": True})
            if op == "restart":
                down_ms = int(params.get("down_ms", "0") or 0)
                graceful = go_parse_bool(params.get("graceful", "0") or "0")
                self.close_connection = True
                self._send_json(200, {"restarting": True, "down_ms": down_ms, "port": fake.port})
                threading.Thread(target=fake.restart, args=(down_ms, graceful), daemon=True).start()
                return
            return self._send_status(404, "unknown control endpoint %s" % path)
        except (ApplyError, ValueError, KeyError, TypeError) as e:
            return self._send_status(400, "%s: %s" % (type(e).__name__, e))


def _check_chunking(mode):
    if mode in ("go", "event", "coalesce"):
        return
    if mode.startswith("split:") and mode[6:].isdigit() and int(mode[6:]) > 0:
        return
    raise ValueError("chunking must be go, event, coalesce or split:N")


def _parse_documents(data):
    """JSON object / list / JSON lines / {kind: List}, or multi-document YAML (if PyYAML is installed)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    text = data.strip()
    if not text:
        return []
    try:
        v = json.loads(text)
        docs = v if isinstance(v, list) else [v]
    except ValueError:
        docs = None
        lines = [l for l in text.splitlines() if l.strip()]
        try:
            docs = [json.loads(l) for l in lines]
        except ValueError:
            if yaml is None:
                raise ApplyError("not JSON, and python3-yaml is not installed for YAML")
            docs = [_jsonable(d) for d in yaml.safe_load_all(text) if d is not None]
    out = []
    for d in docs:
        if isinstance(d, dict) and d.get("kind") == "List" and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def _jsonable(v):
    """YAML gives datetime/date for unquoted timestamps; the API has RFC 3339 strings."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


def load_file(path):
    with open(path, "rb") as f:
        return _parse_documents(f.read())


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API server for tests")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick one)")
    ap.add_argument("--token-file", help="bearer token file, re-read on every request")
    ap.add_argument("--token", help="bearer token (literal)")
    ap.add_argument("--load", action="append", default=[], help="preload objects (JSON, JSON lines or YAML)")
    ap.add_argument("--namespace", default="default", help="namespace for loaded objects that have none")
    ap.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between BOOKMARKs (0: none)")
    ap.add_argument("--expired-as-http", action="store_true",
                    help="a watch from a compacted RV gets HTTP 410 instead of a 200 + ERROR event")
    ap.add_argument("--chunking", default="go", help="go | event | coalesce | split:N")
    ap.add_argument("--history-limit", type=int, default=0, help="events kept per kind (0: unlimited)")
    ap.add_argument("--continue-ttl", type=float, default=300.0, help="seconds a continue token stays valid")
    ap.add_argument("--default-watch-timeout", type=float, default=1800.0,
                    help="watch without timeoutSeconds ends after this * [1,2) seconds")
    ap.add_argument("--gzip-threshold", type=int, default=128 * 1024,
                    help="gzip non-watch responses of at least this many bytes if accepted (0: never)")
    ap.add_argument("--server-version", default="v1.30.0-fake")
    ap.add_argument("--user", default="system:serviceaccount:default:waypoint",
                    help="user named in 403 messages")
    ap.add_argument("--no-managed-fields", action="store_true")
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin is closed")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    _check_chunking(a.chunking)

    fake = FakeApiServer(a.cert, a.key, port=a.port, token=a.token, token_file=a.token_file,
                         bookmark_interval=a.bookmark_interval, expired_as_http=a.expired_as_http,
                         chunking=a.chunking, history_limit=a.history_limit, continue_ttl=a.continue_ttl,
                         default_watch_timeout=a.default_watch_timeout, gzip_threshold=a.gzip_threshold,
                         server_version=a.server_version, user=a.user,
                         managed_fields=not a.no_managed_fields, verbose=a.verbose)
    for path in a.load:
        fake.apply(load_file(path), default_namespace=a.namespace)
    port = fake.start()
    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if a.exit_on_stdin_eof:
        def _stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except Exception:
                pass
            done.set()
        threading.Thread(target=_stdin, daemon=True).start()
    while not done.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
