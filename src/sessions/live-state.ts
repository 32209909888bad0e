/**
 * What a LiveKit event does to a session's live state (participants, tracks, egresses, ingresses): pure
 * functions over plain data, no I/O. The state is a merge of facts that does not depend on arrival order:
 * - participants and tracks are keyed by sid, and "left" / "unpublished" are remembered (tombstones), so
 *   a late `joined` / `published` can never bring one back (a rejoin is a new sid);
 * - egresses and ingresses keep the version with the newest `updatedAt` (ties broken by status, then by content);
 * - state is kept per room instance (LiveKit's room sid); the view is that of the newest known instance,
 *   and `room_finished` ends everything of its instance.
 */

export type RoomRef = { sid: string; createdMs: number | null };

/** LiveKit's ParticipantInfo.Kind names (STANDARD, INGRESS, EGRESS, SIP, AGENT, ...). */
export type ParticipantKind = string;

export type LiveParticipant = { sid: string; identity: string; name: string; kind: ParticipantKind; joinedAtMs: number };
export type LiveTrack = { sid: string; participantSid: string; type: string; source: string; muted: boolean };
/** LiveKit's EgressStatus names (EGRESS_STARTING ... EGRESS_LIMIT_REACHED); times in ms, 0 when unset. */
export type LiveEgress = { egressId: string; status: string; startedAtMs: number; endedAtMs: number; updatedAtMs: number };
/** LiveKit's IngressState.Status names (ENDPOINT_INACTIVE ... ENDPOINT_COMPLETE). */
export type LiveIngress = { ingressId: string; status: string; updatedAtMs: number };

export type LiveEvent =
  | { kind: 'room_started' | 'room_finished'; room: RoomRef }
  | { kind: 'participant_joined'; room: RoomRef; participant: LiveParticipant }
  | { kind: 'participant_left'; room: RoomRef; participant: LiveParticipant }
  | { kind: 'track_published'; room: RoomRef; participant: LiveParticipant; track: LiveTrack }
  | { kind: 'track_unpublished'; room: RoomRef; participant: LiveParticipant; track: LiveTrack }
  | { kind: 'egress'; room: RoomRef; egress: LiveEgress }
  | { kind: 'ingress'; room: RoomRef; ingress: LiveIngress }
  /** Reconciliation: LiveKit's own list of the instance's participants, read at `askedAtMs`. */
  | { kind: 'participants_listed'; room: RoomRef; participants: LiveParticipant[]; askedAtMs: number };

export type InstanceState = {
  sid: string;
  /** Known from room and participant events; egress and ingress events do not carry it. */
  createdMs: number | null;
  finished: boolean;
  participants: LiveParticipant[];
  leftParticipants: string[];
  tracks: LiveTrack[];
  unpublishedTracks: string[];
  egresses: LiveEgress[];
  ingresses: LiveIngress[];
};

/** Stored as JSON on the session row. */
export type LiveState = {
  instances: InstanceState[];
  /** Sids of instances older than the current one: their late events change nothing. */
  staleSids: string[];
};

export const EMPTY_LIVE_STATE: LiveState = Object.freeze({ instances: [], staleSids: [] });

/** How many instances without a known creation time (only egress/ingress seen) are kept, and stale sids remembered. */
const MAX_UNDATED_INSTANCES = 8;
const MAX_STALE_SIDS = 64;

/** Participant kinds that count as people in `participantCount`: not recorders (EGRESS), stream inputs (INGRESS) or bots (AGENT). */
export const COUNTED_KINDS: ReadonlySet<string> = new Set(['STANDARD', 'SIP']);

const ACTIVE_EGRESS = new Set(['EGRESS_STARTING', 'EGRESS_ACTIVE', 'EGRESS_ENDING']);
const EGRESS_RANK: Record<string, number> = {
  EGRESS_STARTING: 0,
  EGRESS_ACTIVE: 1,
  EGRESS_ENDING: 2,
  EGRESS_COMPLETE: 3,
  EGRESS_FAILED: 3,
  EGRESS_ABORTED: 3,
  EGRESS_LIMIT_REACHED: 3,
};
const INGRESS_RANK: Record<string, number> = { ENDPOINT_INACTIVE: 0, ENDPOINT_BUFFERING: 1, ENDPOINT_PUBLISHING: 2, ENDPOINT_ERROR: 3, ENDPOINT_COMPLETE: 3 };

/** The session's live state as clients see it: the newest known instance only. */
export type LiveView = {
  roomSid: string | null;
  finished: boolean;
  participants: Array<LiveParticipant & { tracks: LiveTrack[] }>;
  participantCount: number;
  egresses: LiveEgress[];
  ingresses: LiveIngress[];
  recording: boolean;
};

function newerInstance(a: RoomRef, b: RoomRef): boolean {
  if (a.createdMs === null || b.createdMs === null) return false;
  if (a.createdMs !== b.createdMs) return a.createdMs > b.createdMs;
  return a.sid > b.sid;
}

/** The instance the view shows: the newest with a known creation time. */
export function currentInstance(state: LiveState): InstanceState | null {
  let best: InstanceState | null = null;
  for (const inst of state.instances) if (inst.createdMs !== null && (best === null || newerInstance(inst, best))) best = inst;
  return best;
}

const emptyInstance = (room: RoomRef): InstanceState => ({
  sid: room.sid,
  createdMs: room.createdMs,
  finished: false,
  participants: [],
  leftParticipants: [],
  tracks: [],
  unpublishedTracks: [],
  egresses: [],
  ingresses: [],
});

const cmpStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
// Total orders over every field: the greatest version wins whatever the arrival order.
const compareEgress = (a: LiveEgress, b: LiveEgress) =>
  a.updatedAtMs - b.updatedAtMs ||
  (EGRESS_RANK[a.status] ?? 0) - (EGRESS_RANK[b.status] ?? 0) ||
  a.endedAtMs - b.endedAtMs ||
  a.startedAtMs - b.startedAtMs ||
  cmpStr(a.status, b.status);
const compareIngress = (a: LiveIngress, b: LiveIngress) =>
  a.updatedAtMs - b.updatedAtMs || (INGRESS_RANK[a.status] ?? 0) - (INGRESS_RANK[b.status] ?? 0) || cmpStr(a.status, b.status);

/** Keeps the greater of two versions of one item; `undefined` when the incoming one changes nothing. */
function upsertNewest<T>(items: T[], item: T, key: (t: T) => string, compare: (a: T, b: T) => number): T[] | undefined {
  const i = items.findIndex((x) => key(x) === key(item));
  if (i < 0) return [...items, item];
  if (compare(item, items[i]!) <= 0) return undefined;
  return items.map((x, j) => (j === i ? item : x));
}

/** A participant's facts merge: the earliest join time and the first-seen identity (same sid, same person). */
function addParticipant(inst: InstanceState, p: LiveParticipant): InstanceState {
  if (inst.leftParticipants.includes(p.sid)) return inst;
  const existing = inst.participants.find((x) => x.sid === p.sid);
  if (existing) {
    const merged = mergeParticipant(existing, p);
    return merged === existing ? inst : { ...inst, participants: inst.participants.map((x) => (x.sid === p.sid ? merged : x)) };
  }
  return { ...inst, participants: [...inst.participants, p] };
}

function mergeParticipant(a: LiveParticipant, b: LiveParticipant): LiveParticipant {
  // Fields can differ between events of one sid (a name update, joinedAt 0 in a left event): a deterministic choice.
  const joinedAtMs = a.joinedAtMs === 0 ? b.joinedAtMs : b.joinedAtMs === 0 ? a.joinedAtMs : Math.min(a.joinedAtMs, b.joinedAtMs);
  const pick = (x: string, y: string) => (x === '' ? y : y === '' ? x : x < y ? x : y);
  const merged = { sid: a.sid, identity: pick(a.identity, b.identity), name: pick(a.name, b.name), kind: pick(a.kind, b.kind), joinedAtMs };
  return merged.identity === a.identity && merged.name === a.name && merged.kind === a.kind && merged.joinedAtMs === a.joinedAtMs ? a : merged;
}

function removeParticipant(inst: InstanceState, sid: string): InstanceState {
  if (inst.leftParticipants.includes(sid)) return inst;
  return { ...inst, leftParticipants: [...inst.leftParticipants, sid], participants: inst.participants.filter((p) => p.sid !== sid) };
}

function applyToInstance(inst: InstanceState, event: LiveEvent): InstanceState {
  switch (event.kind) {
    case 'room_started':
      return inst;
    case 'room_finished':
      return inst.finished ? inst : { ...inst, finished: true };
    case 'participant_joined':
      return addParticipant(inst, event.participant);
    case 'participant_left':
      return removeParticipant(inst, event.participant.sid);
    case 'track_published': {
      const withParticipant = addParticipant(inst, event.participant);
      if (withParticipant.unpublishedTracks.includes(event.track.sid) || withParticipant.tracks.some((t) => t.sid === event.track.sid)) return withParticipant;
      return { ...withParticipant, tracks: [...withParticipant.tracks, event.track] };
    }
    case 'track_unpublished': {
      if (inst.unpublishedTracks.includes(event.track.sid)) return inst;
      return { ...inst, unpublishedTracks: [...inst.unpublishedTracks, event.track.sid], tracks: inst.tracks.filter((t) => t.sid !== event.track.sid) };
    }
    case 'egress': {
      const egresses = upsertNewest(inst.egresses, event.egress, (e) => e.egressId, compareEgress);
      return egresses ? { ...inst, egresses } : inst;
    }
    case 'ingress': {
      const ingresses = upsertNewest(inst.ingresses, event.ingress, (i) => i.ingressId, compareIngress);
      return ingresses ? { ...inst, ingresses } : inst;
    }
    case 'participants_listed': {
      // LiveKit's own list wins over our set: who joined before the question and is not listed has left; who is listed is in.
      let next = inst;
      const listed = new Set(event.participants.map((p) => p.sid));
      for (const p of inst.participants) if (!listed.has(p.sid) && p.joinedAtMs < event.askedAtMs) next = removeParticipant(next, p.sid);
      for (const p of event.participants) next = addParticipant(next, p);
      return next;
    }
  }
}

/** Applies one event; returns the same object when nothing changed. */
export function applyLiveEvent(state: LiveState, event: LiveEvent): LiveState {
  const room = event.room;
  if (state.staleSids.includes(room.sid)) return state;
  const current = currentInstance(state);
  if (current && room.createdMs !== null && room.sid !== current.sid && newerInstance(current, room)) {
    // Older than what we show: nothing it says can change the view again.
    return pruneStale({ ...state, staleSids: [...state.staleSids, room.sid].slice(-MAX_STALE_SIDS) });
  }
  const i = state.instances.findIndex((x) => x.sid === room.sid);
  let inst = i >= 0 ? state.instances[i]! : emptyInstance(room);
  if (inst.createdMs === null && room.createdMs !== null) inst = { ...inst, createdMs: room.createdMs };
  const applied = applyToInstance(inst, event);
  if (i >= 0 && applied === state.instances[i]) return state;
  const instances = i >= 0 ? state.instances.map((x, j) => (j === i ? applied : x)) : [...state.instances, applied];
  return pruneStale({ ...state, instances });
}

/** Drops instances older than the current one (remembering their sids) and caps undated ones. */
function pruneStale(state: LiveState): LiveState {
  const current = currentInstance(state);
  if (!current) return capUndated(state);
  const stale = state.instances.filter((x) => x !== current && (x.createdMs !== null || state.staleSids.includes(x.sid)));
  if (stale.length === 0) return capUndated(state);
  const known = new Set(state.staleSids);
  const staleSids = [...state.staleSids, ...stale.map((x) => x.sid).filter((sid) => !known.has(sid))].slice(-MAX_STALE_SIDS);
  return capUndated({ instances: state.instances.filter((x) => !stale.includes(x)), staleSids });
}

function capUndated(state: LiveState): LiveState {
  const undated = state.instances.filter((x) => x.createdMs === null);
  if (undated.length <= MAX_UNDATED_INSTANCES) return state;
  const drop = new Set(undated.slice(0, undated.length - MAX_UNDATED_INSTANCES));
  return { ...state, instances: state.instances.filter((x) => !drop.has(x)) };
}

const byJoinThenSid = (a: LiveParticipant, b: LiveParticipant) => a.joinedAtMs - b.joinedAtMs || (a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0);
const bySid = (a: { sid: string }, b: { sid: string }) => cmpStr(a.sid, b.sid);

/** What clients see. Deterministic order, so equal states give equal views. */
export function liveView(state: LiveState | null | undefined): LiveView {
  const inst = state ? currentInstance(state) : null;
  if (!inst) return { roomSid: null, finished: false, participants: [], participantCount: 0, egresses: [], ingresses: [], recording: false };
  // Objects rebuilt field by field: JSON read back from Postgres (jsonb) has its keys in another order.
  const participants = inst.finished
    ? []
    : [...inst.participants].sort(byJoinThenSid).map((p) => ({
        sid: p.sid,
        identity: p.identity,
        name: p.name,
        kind: p.kind,
        joinedAtMs: p.joinedAtMs,
        tracks: inst.tracks
          .filter((t) => t.participantSid === p.sid)
          .sort(bySid)
          .map((t) => ({ sid: t.sid, participantSid: t.participantSid, type: t.type, source: t.source, muted: t.muted })),
      }));
  const egresses = [...inst.egresses]
    .sort((a, b) => a.startedAtMs - b.startedAtMs || cmpStr(a.egressId, b.egressId))
    .map((e) => ({ egressId: e.egressId, status: e.status, startedAtMs: e.startedAtMs, endedAtMs: e.endedAtMs, updatedAtMs: e.updatedAtMs }));
  const ingresses = [...inst.ingresses]
    .sort((a, b) => cmpStr(a.ingressId, b.ingressId))
    .map((i) => ({ ingressId: i.ingressId, status: i.status, updatedAtMs: i.updatedAtMs }));
  return {
    roomSid: inst.sid,
    finished: inst.finished,
    participants,
    participantCount: participants.filter((p) => COUNTED_KINDS.has(p.kind)).length,
    egresses,
    ingresses,
    recording: !inst.finished && egresses.some((e) => ACTIVE_EGRESS.has(e.status)),
  };
}

/** Whether two states look the same to clients (a change of only hidden facts bumps no version). */
export function sameView(a: LiveState | null | undefined, b: LiveState | null | undefined): boolean {
  return JSON.stringify(liveView(a)) === JSON.stringify(liveView(b));
}

/** Every LiveKit webhook event this service understands (anything else is only recorded). */
export const LIVEKIT_EVENT_TYPES = [
  'room_started',
  'room_finished',
  'participant_joined',
  'participant_left',
  'participant_connection_aborted',
  'track_published',
  'track_unpublished',
  'egress_started',
  'egress_updated',
  'egress_ended',
  'ingress_started',
  'ingress_ended',
] as const;
export type LiveKitEventType = (typeof LIVEKIT_EVENT_TYPES)[number];
