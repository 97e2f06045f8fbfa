// The traffic switch of a bluegreen nginx edge, read per request, so that moving traffic needs no
// reload: a reload closes kept-alive connections, and a client that sends on one as it closes gets
// a reset (a POST is never retried). nginx.conf defines one upstream group per colour and
// `proxy_pass http://<prefix>_$bluegreen_color`; everything that moves traffic lives in the state
// file `$bluegreen_state` names, which bluegreen replaces atomically (rename, or NixOS's /etc
// switch), and which this module reads once per request (njs gives each request its own VM).
//
// One module, over 350 lines, on purpose: nginx.conf imports one file (`js_import`), and every
// js_set variable and handler below reads the same state through `load`.
//
// The state (bluegreen/nginx.py `switch_state` writes it; nixos/modules/edge-node/ too):
//   generation   fingerprint of this state and the nginx.conf it was written for
//   conf         the generation of that nginx.conf ($bluegreen_conf): a worker of another
//                config (during a reload) answers with its own, so a probe never mistakes it
//   active       the pointer;  weights {colour: 0-100};  sticky (canary by client cookie)
//   versions     {colour: version}, for the cache key
//   writes       the methods maintenance refuses and shadow traffic leaves alone
//   maintenance  null, or {status, retryAfter, banner, body, queue}: queue null, or {paths,
//                maxBody}: the path prefixes whose writes carrying an Idempotency-Key the queue
//                service keeps, and the largest body it takes (bytes)
//   window       null, or {start, end}: the planned maintenance window, epoch seconds or null
//   lease        {color, fence, since, handover}: the writer lease (bluegreen/nginx.py `Lease`);
//                nobody holds it while writes are frozen. `since` is the operator's clock and
//                is not served: see `stampedAt`
//   shadow       null, or {percent, writes}
//   limits       null, or {retryAfter, until}: until null means always, else epoch seconds
//   warm         null, or {color, token}: bluegreen's own requests (below) carrying
//                X-Bluegreen-Warm: token go to color
//   probe        this edge's probe token: a request is bluegreen's own (the switch's
//                confirmation, the cache warm-up, the queue service) only when its
//                X-Bluegreen-Probe is exactly this. It is a secret of the edge, kept across
//                updates; "" or missing: no request is.
//   writtenAt    epoch seconds of the write (for people and benches)

var fs = require('fs');

var state = null;

function load(r) {
    if (state === null) {
        try {
            state = JSON.parse(fs.readFileSync(r.variables.bluegreen_state));
        } catch (e) {
            r.error('bluegreen: cannot read the switch state ' + r.variables.bluegreen_state +
                    ': ' + e.message);
            state = {};
        }
    }
    return state;
}

function fnv1a(text) {
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
        h ^= text.charCodeAt(i);
        h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
}

function other(s) {
    return Object.keys(s.weights || {}).filter(function (c) { return c !== s.active; })[0];
}

// Whether the request is bluegreen's own: its X-Bluegreen-Probe is this edge's probe token.
// Anything a probe is spared (the limits, the cache, shadow traffic, the arms' and the access
// log's figures) asks this, never whether the header is there: any client can send a header.
function verified(s, r) {
    var sent = r.headersIn['X-Bluegreen-Probe'];
    var token = s.probe;
    if (!token || !sent || sent.length !== token.length) {
        return false;
    }
    // Compared in full whatever differs, so the answer's timing says nothing of the token.
    var diff = 0;
    for (var i = 0; i < token.length; i++) {
        diff |= sent.charCodeAt(i) ^ token.charCodeAt(i);
    }
    return diff === 0;
}

function warming(s, r) {
    return !!s.warm && r.headersIn['X-Bluegreen-Warm'] === s.warm.token && verified(s, r);
}

// "1" for bluegreen's own requests, "" for everyone else's: what the edge sends the arms as
// X-Bluegreen-Probe and writes in the access log's `probe`.
function probe(r) {
    return verified(load(r), r) ? '1' : '';
}

// X-Bluegreen-Replay toward the arm: the queue service's receipt on its replays, which only a
// verified probe may claim; "" (removed) for everyone else.
function replay(r) {
    var s = load(r);
    return verified(s, r) ? (r.headersIn['X-Bluegreen-Replay'] || '') : '';
}

// "1" when a request must not be answered from the cache: bluegreen's own, which must see the
// arm, unless it is warming the cache before a flip.
function cacheBypass(r) {
    var s = load(r);
    return verified(s, r) && !warming(s, r) ? '1' : '';
}

// The colour this request goes to. A canary split is a weighted choice per request; a sticky one
// puts each client in a bucket 0-99 by its cookie, and the active colour takes the buckets below
// its weight, so raising the weight only ever moves clients onto the new colour.
function color(r) {
    var s = load(r);
    if (!s.active) {
        return '';
    }
    if (warming(s, r)) {
        return s.warm.color;
    }
    var idle = other(s);
    var weight = s.weights[s.active];
    if (weight >= 100 || !idle) {
        return s.active;
    }
    if (weight <= 0) {
        return idle;
    }
    var roll = s.sticky ? fnv1a(r.variables.bluegreen_client) % 100 : Math.random() * 100;
    return roll < weight ? s.active : idle;
}

function version(r) {
    var s = load(r);
    return (s.versions || {})[r.variables.bluegreen_color] || '';
}

function edge(r) {
    return load(r).active || '';
}

function generation(r) {
    var s = load(r);
    var conf = r.variables.bluegreen_conf;
    return s.conf === conf ? s.generation : 'conf-' + conf;
}

function isWrite(s, r) {
    return (s.writes || []).indexOf(r.method) >= 0;
}

function queued(s, r) {
    var q = s.maintenance.queue;
    if (!q || !r.headersIn['Idempotency-Key']) {
        return false;
    }
    return q.paths.some(function (p) {
        var base = p.replace(/\/+$/, '');
        return r.uri === p || r.uri === base || r.uri.indexOf(base + '/') === 0;
    });
}

// For a write during maintenance: "queue" when the queue service keeps it (a queued path, an
// Idempotency-Key), else "503" or "423"; "" for everything else.
function refuse(r) {
    var s = load(r);
    if (!s.maintenance || !isWrite(s, r)) {
        return '';
    }
    if (!queued(s, r)) {
        return String(s.maintenance.status);
    }
    // nginx checks client_max_body_size when it picks a location, which a named one skips.
    return Number(r.headersIn['Content-Length'] || 0) > s.maintenance.queue.maxBody ? '413' : 'queue';
}

// Seconds until writes may succeed: until the planned end while it is ahead, else the
// configured Retry-After.
function countdown(s) {
    var end = s.window && s.window.end;
    var left = end ? Math.ceil(end - Date.now() / 1000) : 0;
    return left > 0 ? left : s.maintenance.retryAfter;
}

function iso(epoch) {
    return epoch ? new Date(epoch * 1000).toISOString().replace(/\.[0-9]+Z$/, 'Z') : null;
}

function maintenanceBody(r) {
    var s = load(r);
    if (!s.maintenance) {
        return '';
    }
    var body = JSON.parse(s.maintenance.body);
    body.retryAfter = countdown(s);
    if (s.window && s.window.end && s.window.end > Date.now() / 1000) {
        body.until = iso(s.window.end);
    }
    return JSON.stringify(body);
}

function banner(r) {
    var s = load(r);
    return s.maintenance ? s.maintenance.banner : '';
}

function limited(s) {
    return !!s.limits && (s.limits.until === null || Date.now() / 1000 < s.limits.until);
}

// The key of the edge-wide rate limit and connection cap: "" (not counted) while they are off,
// and for bluegreen's own probes, whose confirmation of a flip must get through.
function limitKey(r) {
    var s = load(r);
    return limited(s) && !verified(s, r) ? 'edge' : '';
}

// Retry-After of the answers the edge itself refuses: maintenance, or the limits (429, or 503
// from the connection cap, which no arm answered).
function retryAfter(r) {
    var s = load(r);
    var refused = refuse(r);
    if (refused === 'queue' && r.status === 429 && !r.variables.upstream_status) {
        // The maintenance queue's per-client rate: the next second has room again.
        return '1';
    }
    if (refused) {
        return String(countdown(s));
    }
    if ((r.status === 429 || r.status === 503) && !r.variables.upstream_status && s.limits) {
        return String(s.limits.retryAfter);
    }
    return '';
}

// Set-Cookie of a sticky canary's new client; "" (no header) otherwise.
function setCookie(r) {
    var s = load(r);
    var split = (s.weights || {})[s.active] < 100;
    return s.sticky && split ? r.variables.bluegreen_set_cookie : '';
}

// In the mirror subrequest: the idle colour for the share of live requests shadow traffic takes,
// "" for the rest (the subrequest ends at once). Never during a canary split, never for probes,
// and writes only when asked.
function shadow(r) {
    var s = load(r);
    var idle = other(s);
    if (!s.shadow || !idle || s.weights[s.active] < 100 || verified(s, r)) {
        return '';
    }
    if (isWrite(s, r) && !s.shadow.writes) {
        return '';
    }
    return Math.random() * 100 < s.shadow.percent ? idle : '';
}

// "1" when an answer must not be stored: a probe's (it bypasses the cache to see the arm, unless
// it warms the cache before a flip), or an arm other than the one the key names answered (the
// idle arm standing in as backup), so that no key ever holds the other version's content.
function noCache(r) {
    var s = load(r);
    var served = r.variables.upstream_http_x_bluegreen_version;
    return cacheBypass(r) || served !== version(r) ? '1' : '';
}

function health(r) {
    var s = load(r);
    return JSON.stringify({
        status: s.active ? 'ok' : 'no switch state',
        activeColor: s.active || null,
        weights: s.weights || null,
        readOnly: !!s.maintenance,
        generation: generation(r),
    });
}

// Where the planned window stands: "planned" (ahead), "due" (its start passed, maintenance not
// on yet), "in-progress", "overrunning" (maintenance on past its end), "ended"; null without one.
function phase(s, now) {
    var w = s.window;
    if (!w) {
        return s.maintenance ? 'in-progress' : null;
    }
    if (s.maintenance) {
        return w.end && now >= w.end ? 'overrunning' : 'in-progress';
    }
    if (w.start && now < w.start) {
        return 'planned';
    }
    return w.end && now >= w.end ? 'ended' : 'due';
}

function statusDoc(r) {
    var s = load(r);
    var now = Date.now() / 1000;
    var m = s.maintenance;
    return {
        status: s.active ? 'ok' : 'no switch state',
        live: {
            color: s.active || null,
            version: (s.versions || {})[s.active] || null,
            weights: s.weights || null,
        },
        readOnly: !!m,
        maintenance: m ? {
            status: m.status,
            retryAfter: countdown(s),
            banner: m.banner,
            queued: m.queue ? m.queue.paths : [],
        } : null,
        window: s.window || m ? {
            start: iso(s.window && s.window.start),
            end: iso(s.window && s.window.end),
            phase: phase(s, now),
        } : null,
        generation: generation(r),
        now: iso(now),
    };
}

function status(r) {
    r.return(statusCode(r), JSON.stringify(statusDoc(r)) + '\n');
}

function statusCode(r) {
    return load(r).active ? 200 : 503;
}

function escape(text) {
    return String(text === null || text === undefined ? '' : text).replace(/[&<>"']/g,
        function (c) {
            return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
        });
}

function row(name, value) {
    return '<tr><th>' + escape(name) + '</th><td>' + escape(value) + '</td></tr>';
}

function statusPage(r) {
    var d = statusDoc(r);
    var w = d.window || {};
    var title = d.readOnly ? 'Read-only for maintenance' :
        (w.phase === 'planned' || w.phase === 'due' ? 'Maintenance planned' : 'Operating normally');
    var rows = [
        row('Live', d.live.color ? d.live.color + ' (' + d.live.version + ')' : 'none'),
        row('Writes', d.readOnly ? 'refused, retry in ' + d.maintenance.retryAfter + ' s' : 'open'),
    ];
    if (d.window) {
        rows.push(row('Window', (w.start || 'now') + ' to ' + (w.end || 'until further notice')));
        rows.push(row('Phase', w.phase));
    }
    if (d.maintenance && d.maintenance.queued.length) {
        rows.push(row('Kept for later', 'writes to ' + d.maintenance.queued.join(', ') +
            ' with an Idempotency-Key (202, a receipt)'));
    }
    rows.push(row('As of', d.now));
    var banner = d.maintenance && d.maintenance.banner ?
        '<p class="banner">' + escape(d.maintenance.banner) + '</p>' : '';
    r.return(statusCode(r), '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
        '<title>' + escape(title) + '</title></head><body><h1>' + escape(title) + '</h1>' +
        banner + '<table>' + rows.join('') + '</table></body></html>\n');
}

// When this edge began serving the lease with `fence`, by its own clock: the mtime of the stamp
// `$bluegreen_lease_dir/lease-<fence>`, which is created on the edge host just after the state
// carrying that fence is put in place (the local edge's `write_state`, the NixOS module's
// activation script), and kept while the fence stays. The state's own `since` is the operator's
// clock before the copy, the rebuild or the cache warm-up: a slow one, or a skewed clock, would
// eat the handover. The state file's mtime would not do: it changes with every weight or
// maintenance change (and on NixOS it is a store path, mtime 1). No stamp yet: the handover
// starts now, so a holder's writers never start early.
function stampedAt(r, fence, now) {
    var path = r.variables.bluegreen_lease_dir + '/lease-' + fence;
    try {
        return fs.statSync(path).mtimeMs / 1000;
    } catch (e) {
        if (e.code !== 'ENOENT') {
            r.error('bluegreen: cannot read the lease stamp ' + path + ': ' + e.message);
        }
        return now;
    }
}

// The writer lease: who may run background writers, read-only. Nobody while writes are frozen.
function lease(r) {
    var s = load(r);
    var l = s.lease;
    if (!s.active || !l) {
        r.return(503, JSON.stringify({error: 'no switch state'}) + '\n');
        return;
    }
    var now = Date.now() / 1000;
    r.return(200, JSON.stringify({
        holder: s.maintenance ? null : l.color,
        fence: l.fence,
        since: stampedAt(r, l.fence, now),
        handover: l.handover,
        now: now,
        generation: generation(r),
    }) + '\n');
}

export default {
    color, version, edge, generation, refuse, maintenanceBody, banner, limitKey, retryAfter,
    setCookie, shadow, noCache, health, lease, status, statusPage, probe, replay, cacheBypass,
};
