"""The Redis layout of the aggregator, with atomic Lua updates.

Keys (prefix `ferlite:` by default; every key expires after the retention period):

- `event:{event_id}` (hash): classroom, label, architecture, model_version, ts, feedback. The
  idempotency marker, and what feedback looks up.
- `stream:{classroom}` (stream): one entry per event (JSON, no pixels), trimmed by MINID
  (retention) and MAXLEN.
- `minute:{classroom}:{epoch minute}` (hash): count per label, `total`, `uncertain`, uncertain
  count per label (`u:{label}`) and count per architecture (`m:{architecture}`).
- `classrooms` (set): classroom ids seen.
(`erase_classroom` deletes a classroom's stream, minute counts, markers and set entry.)
- `feedback:{architecture}:{version}` (hash): `total` and `correct` teacher feedbacks.
- `feedback_recent:{architecture}:{version}` (list): the last N event ids with feedback; the
  `feedback` hash also keeps the rolling accuracy over them (`recent_hits`, `recent_n`).
- `drift:{architecture}:{version}` (list): the drift window, "class:confidence" of the newest
  events, shared by every aggregator replica so all report the same drift figures.

One Lua script records a whole batch: for each event it checks the marker, and only if absent
writes the marker, the stream entry and the minute counters. A script runs atomically, so an
event and its aggregates never disagree, and a retried batch finds its markers and counts
nothing twice. (Keys are built inside the scripts, so this layout targets a single Redis or a
primary with replicas, not Redis Cluster.)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from ferlite.base.events import Event
from ferlite.base.labels import EMOTIONS


class EventConflict(ValueError):
    """An event id is already stored for a different event (another classroom, stream or track)."""

    def __init__(self, index: int, event_id: str) -> None:
        super().__init__(f"events[{index}] (id {event_id[:130]!r}): event_id is already stored for a different "
                         "event (another classroom, stream or track); nothing of this batch was stored")
        self.index = index


RECORD_LUA = """
local prefix, ttl, maxlen, minid, marker_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
-- First pass, nothing written yet: an id already stored for another classroom, stream or track is a
-- conflict (a different event), not a retry; the whole batch is refused.
for i = 6, #ARGV do
  local e = cjson.decode(ARGV[i])
  local f = redis.call('HMGET', prefix .. 'event:' .. e.event_id, 'classroom', 'stream', 'track')
  if f[1] and (f[1] ~= e.classroom_id or (f[2] and f[2] ~= e.stream_id) or (f[3] and f[3] ~= e.track_id)) then
    return {-1, i - 6}
  end
end
local flags = {}
for i = 6, #ARGV do
  local e = cjson.decode(ARGV[i])
  local ekey = prefix .. 'event:' .. e.event_id
  if redis.call('EXISTS', ekey) == 1 then
    flags[#flags + 1] = 0
  else
    redis.call('HSET', ekey, 'classroom', e.classroom_id, 'stream', e.stream_id, 'track', e.track_id,
               'label', e.label,
               'architecture', e.architecture, 'model_version', e.model_version, 'ts', e.timestamp)
    redis.call('EXPIRE', ekey, marker_ttl)
    local skey = prefix .. 'stream:' .. e.classroom_id
    redis.call('XADD', skey, 'MINID', '~', minid, '*', 'event', ARGV[i])
    redis.call('XTRIM', skey, 'MAXLEN', '~', maxlen)
    redis.call('EXPIRE', skey, ttl)
    local mkey = prefix .. 'minute:' .. e.classroom_id .. ':' .. string.format('%d', math.floor(e.timestamp / 60) * 60)
    redis.call('HINCRBY', mkey, e.label, 1)
    redis.call('HINCRBY', mkey, 'total', 1)
    if e.uncertain then
      redis.call('HINCRBY', mkey, 'uncertain', 1)
      redis.call('HINCRBY', mkey, 'u:' .. e.label, 1)
    end
    redis.call('HINCRBY', mkey, 'm:' .. e.architecture, 1)
    redis.call('EXPIRE', mkey, ttl)
    redis.call('SADD', prefix .. 'classrooms', e.classroom_id)
    redis.call('EXPIRE', prefix .. 'classrooms', ttl)
    flags[#flags + 1] = 1
  end
end
return flags
"""

FEEDBACK_LUA = """
local prefix, event_id, truth, window, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local ekey = prefix .. 'event:' .. event_id
if redis.call('EXISTS', ekey) == 0 then return false end
local f = redis.call('HMGET', ekey, 'label', 'architecture', 'model_version', 'feedback')
local label, arch, ver, previous = f[1], f[2], f[3], f[4]
local fkey = prefix .. 'feedback:' .. arch .. ':' .. ver
local rkey = prefix .. 'feedback_recent:' .. arch .. ':' .. ver
local correct = 0
if label == truth then correct = 1 end
if previous then
  local was = 0
  if label == previous then was = 1 end
  redis.call('HINCRBY', fkey, 'correct', correct - was)
else
  redis.call('HINCRBY', fkey, 'total', 1)
  redis.call('HINCRBY', fkey, 'correct', correct)
  redis.call('LPUSH', rkey, event_id)
  redis.call('LTRIM', rkey, 0, window - 1)
end
redis.call('HSET', ekey, 'feedback', truth)
redis.call('EXPIRE', fkey, ttl)
redis.call('EXPIRE', rkey, ttl)
local recent = redis.call('LRANGE', rkey, 0, -1)
local hits, n = 0, 0
for _, id in ipairs(recent) do
  local r = redis.call('HMGET', prefix .. 'event:' .. id, 'label', 'feedback')
  if r[1] and r[2] then
    n = n + 1
    if r[1] == r[2] then hits = hits + 1 end
  end
end
redis.call('HSET', fkey, 'recent_hits', hits, 'recent_n', n)  -- every replica reads the same figure
local totals = redis.call('HMGET', fkey, 'total', 'correct')
return {label, arch, ver, correct, tonumber(totals[1]), tonumber(totals[2]), hits, n}
"""


def _window(entries: list[bytes]) -> list[tuple[int, float]]:
    """A drift list's "class:confidence" entries, newest first."""
    pairs = [e.decode().split(":") for e in entries]
    return [(int(k), float(c)) for k, c in pairs]


@dataclass(frozen=True)
class Minute:
    start: float
    counts: dict[str, int]
    kept: dict[str, int]
    uncertain: int


@dataclass(frozen=True)
class Summary:
    classroom_id: str
    start_time: float
    end_time: float
    total: int
    distribution: dict[str, int]
    dominant: str
    per_minute: list[Minute]
    uncertain_share: float
    kept: dict[str, int]  # the distribution over faces not marked uncertain
    models: dict[str, int]  # events per architecture


@dataclass(frozen=True)
class Feedback:
    correct: bool
    architecture: str
    model_version: str
    total: int
    total_correct: int
    recent_correct: int
    recent_n: int


class RedisStore:
    """All Redis access of the aggregator."""

    def __init__(self, client: redis.Redis, prefix: str = "ferlite:", retention: float = 7 * 86400,
                 maxlen: int = 20_000, feedback_window: int = 200, marker_seconds: float = 900.0) -> None:
        # The per-event marker (idempotency, feedback lookup) lives only this long: one hash per
        # event for the whole retention would fill Redis within days at classroom rates.
        self.marker_seconds = marker_seconds
        self.r = client
        self.prefix = prefix
        self.retention = int(retention)
        self.maxlen = maxlen
        self.feedback_window = feedback_window
        self._record = client.register_script(RECORD_LUA)
        self._feedback = client.register_script(FEEDBACK_LUA)

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False

    def memory(self) -> tuple[int, int]:
        """(used_memory, maxmemory) in bytes; maxmemory 0 means no limit."""
        info = self.r.info("memory")
        return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))

    def record(self, events: list[Event]) -> list[bool]:
        """Store a batch atomically; True per event stored now, False if its id was already stored."""
        minid = f"{int((time.time() - self.retention) * 1000)}-0"
        payload = [json.dumps(e.to_dict(), separators=(",", ":")) for e in events]
        flags = self._record(args=[self.prefix, self.retention, self.maxlen, minid,
                                   int(min(self.marker_seconds, self.retention)), *payload])
        if flags and flags[0] == -1:
            index = int(flags[1])
            raise EventConflict(index, events[index].event_id)
        return [bool(f) for f in flags]

    def summary(self, classroom: str, window: float, end: float) -> Summary:
        start = end - window
        first, last = int(start // 60) * 60, int(end // 60) * 60
        minutes = list(range(first, last + 60, 60))
        pipe = self.r.pipeline(transaction=False)
        for m in minutes:
            pipe.hgetall(f"{self.prefix}minute:{classroom}:{m}")
        rows = pipe.execute()
        distribution, kept = dict.fromkeys(EMOTIONS, 0), dict.fromkeys(EMOTIONS, 0)
        models: dict[str, int] = {}
        per_minute, total, uncertain = [], 0, 0
        for minute, row in zip(minutes, rows, strict=True):
            counts = {k.decode(): int(v) for k, v in row.items()}
            if not counts:
                continue
            labels = {label: counts.get(label, 0) for label in EMOTIONS}
            certain = {label: labels[label] - counts.get(f"u:{label}", 0) for label in EMOTIONS}
            per_minute.append(Minute(float(minute), labels, certain, counts.get("uncertain", 0)))
            for label in EMOTIONS:
                distribution[label] += labels[label]
                kept[label] += certain[label]
            for key, n in counts.items():
                if key.startswith("m:"):
                    models[key[2:]] = models.get(key[2:], 0) + n
            total += counts.get("total", 0)
            uncertain += counts.get("uncertain", 0)
        dominant = max(EMOTIONS, key=lambda k: distribution[k]) if total else ""
        return Summary(classroom, start, end, total, distribution, dominant, per_minute,
                       uncertain / total if total else 0.0, kept,
                       dict(sorted(models.items(), key=lambda kv: (-kv[1], kv[0]))))

    def feedback(self, event_id: str, true_label: str) -> Feedback | None:
        out = self._feedback(args=[self.prefix, event_id, true_label, self.feedback_window, self.retention])
        if not out:
            return None
        _label, arch, ver, correct, total, total_correct, hits, n = out
        return Feedback(bool(correct), arch.decode(), ver.decode(), int(total), int(total_correct),
                        int(hits), int(n))

    def push_drift(self, added: dict[tuple[str, str], list[tuple[int, float]]],
                   size: int) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """Append (class index, confidence) of newly stored events to each arm's shared window and
        return those arms' windows as they now stand (one round trip; no scan of other arms)."""
        pipe = self.r.pipeline(transaction=False)
        for (arch, version), items in added.items():
            key = f"{self.prefix}drift:{arch}:{version}"
            pipe.lpush(key, *[f"{k}:{c:.4f}" for k, c in items])
            pipe.ltrim(key, 0, size - 1)
            pipe.expire(key, int(self.retention))
            pipe.lrange(key, 0, -1)
        replies = pipe.execute()
        return {arm: _window(reply) for arm, reply in zip(added, replies[3::4], strict=True)}

    def drift_windows(self) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """Every arm's shared drift window."""
        out = {}
        for key in self.r.scan_iter(match=f"{self.prefix}drift:*", count=100):
            arch, version = key.decode()[len(self.prefix) + len("drift:"):].split(":", 1)
            out[(arch, version)] = _window(self.r.lrange(key, 0, -1))
        return out

    def feedback_figures(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(feedbacks in all, hits and count over the recent window) per arm, as the last feedback left them."""
        out = {}
        for key in self.r.scan_iter(match=f"{self.prefix}feedback:*", count=100):
            arch, version = key.decode()[len(self.prefix) + len("feedback:"):].split(":", 1)
            total, hits, n = self.r.hmget(key, "total", "recent_hits", "recent_n")
            out[(arch, version)] = (int(total or 0), int(hits or 0), int(n or 0))
        return out

    def stream_key(self, classroom: str) -> str:
        return f"{self.prefix}stream:{classroom}"

    def last_stream_id(self, classroom: str) -> str:
        """The id of the classroom's newest stored event ("0-0" when it has none): where a follower
        that wants only new events starts, resolved once so nothing between two polls is missed."""
        if not self.r.exists(self.stream_key(classroom)):
            return "0-0"
        return self.r.xinfo_stream(self.stream_key(classroom))["last-generated-id"].decode()

    def read_stream(self, classroom: str, last_id: str, block_ms: int | None) -> list[tuple[str, Event]]:
        """Events after `last_id` ("$" = only new ones), waiting up to block_ms for the first (None:
        not at all)."""
        reply = self.r.xread({self.stream_key(classroom): last_id}, block=block_ms, count=100)
        out = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append((entry_id.decode(), Event.from_dict(json.loads(fields[b"event"]))))
        return out

    def erase_classroom(self, classroom: str) -> dict[str, int]:
        """Delete everything stored about `classroom`: its stream, its minute counts, the markers of its
        events (found by their `classroom` field: their ids do not name it), and its place in the set of
        classrooms. Per-architecture feedback and drift figures name no classroom and stay."""
        events = self.event_count(classroom)
        minutes = list(self.r.scan_iter(match=f"{self.prefix}minute:{classroom}:*", count=500))
        candidates = list(self.r.scan_iter(match=f"{self.prefix}event:*", count=500))
        markers = []
        for start in range(0, len(candidates), 500):  # one round trip per 500 markers, not one each
            chunk = candidates[start:start + 500]
            pipe = self.r.pipeline(transaction=False)
            for key in chunk:
                pipe.hget(key, "classroom")
            markers += [key for key, owner in zip(chunk, pipe.execute(), strict=True) if owner == classroom.encode()]
        doomed = minutes + markers
        pipe = self.r.pipeline(transaction=False)
        pipe.delete(self.stream_key(classroom))
        for start in range(0, len(doomed), 500):
            pipe.delete(*doomed[start:start + 500])
        pipe.srem(f"{self.prefix}classrooms", classroom)
        pipe.execute()
        return {"events": events, "minute_buckets": len(minutes), "markers": len(markers)}

    def event_count(self, classroom: str) -> int:
        return int(self.r.xlen(self.stream_key(classroom)))
