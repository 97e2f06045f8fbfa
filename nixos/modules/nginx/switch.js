// The traffic switch of a bluegreen nginx edge, read per request, so that moving traffic needs no
// reload: a reload closes kept-alive connections, and a client that sends on one as it closes gets
// a reset (a POST is never retried). nginx.conf defines one upstream group per colour and
// `proxy_pass http://<prefix>_$bluegreen_color`; everything that moves traffic lives in the state
// file `$bluegreen_state` names, which bluegreen replaces atomically (rename, or NixOS's /etc
// switch), and which this module reads once per request (njs gives each request its own VM).
//
// The state (bluegreen/nginx.py `switch_state` writes it; nixos/modules/edge-node.nix too):
//   generation   fingerprint of this state and the nginx.conf it was written for
//   conf         the generation of that nginx.conf ($bluegreen_conf): a worker of another
//                config (during a reload) answers with its own, so a probe never mistakes it
//   active       the pointer;  weights {colour: 0-100};  sticky (canary by client cookie)
//   versions     {colour: version}, for the cache key
//   writes       the methods maintenance refuses and shadow traffic leaves alone
//   maintenance  null, or {status, retryAfter, banner, body}
//   shadow       null, or {percent, writes}
//   limits       null, or {retryAfter, until}: until null means always, else epoch seconds
//   warm         null, or {color, token}: requests carrying X-Bluegreen-Warm: token go to color
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

// The colour this request goes to. A canary split is a weighted choice per request; a sticky one
// puts each client in a bucket 0-99 by its cookie, and the active colour takes the buckets below
// its weight, so raising the weight only ever moves clients onto the new colour.
function color(r) {
    var s = load(r);
    if (!s.active) {
        return '';
    }
    if (s.warm && r.headersIn['X-Bluegreen-Warm'] === s.warm.token) {
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

// "503" or "423" for a write during maintenance, "" otherwise.
function refuse(r) {
    var s = load(r);
    return s.maintenance && isWrite(s, r) ? String(s.maintenance.status) : '';
}

function maintenanceBody(r) {
    var s = load(r);
    return s.maintenance ? s.maintenance.body : '';
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
    return limited(s) && !r.headersIn['X-Bluegreen-Probe'] ? 'edge' : '';
}

// Retry-After of the answers the edge itself refuses: maintenance, or the limits (429, or 503
// from the connection cap, which no arm answered).
function retryAfter(r) {
    var s = load(r);
    if (refuse(r)) {
        return String(s.maintenance.retryAfter);
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
    if (!s.shadow || !idle || s.weights[s.active] < 100 || r.headersIn['X-Bluegreen-Probe']) {
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
    var warming = s.warm && r.headersIn['X-Bluegreen-Warm'] === s.warm.token;
    var served = r.variables.upstream_http_x_bluegreen_version;
    return (r.headersIn['X-Bluegreen-Probe'] && !warming) || served !== version(r) ? '1' : '';
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

export default {
    color, version, edge, generation, refuse, maintenanceBody, banner, limitKey, retryAfter,
    setCookie, shadow, noCache, health,
};
