/*
 * The delivery queue's protocol, for SPIN: storage/queue.rs (CLAIM, SWEEP,
 * COMPLETE), storage/events.rs (the publish and its hand-off),
 * storage/deliveries.rs (redeliver), delivery/worker.rs and
 * delivery/completer.rs (holds, attempts, outcomes, releases).
 * docs/decisions/0004-the-delivery-queue-is-model-checked.md explains the
 * protocol in prose; check.sh runs every check and every mutation.
 *
 * Abstractions:
 * - Each SQL statement is one atomic step (a d_step): Postgres runs it as
 *   one snapshot under the locks it takes, and claims and sweeps hold the
 *   cursor's row lock, which orders them.
 * - Time is a small integer `now`, advanced by the Clock. A row's place in
 *   the due index is key(d) = due[d] * N + d: the (next_attempt_at, id)
 *   order.
 * - A token is a number, renumbered after every step in the order it is
 *   first referred to (canon()): which uuid a batch drew is not protocol
 *   state, and two runs that differ only in that are one state.
 * - `version` is a ghost bumped by every write to a delivery's row; it,
 *   too, keeps only which values are equal (canon()).
 * - A replica holds at most one hold per delivery (the worker's in-flight
 *   map is keyed by delivery id); a second hold of the same delivery
 *   (after a lost claim, or its own ended lease) replaces the first.
 * - Faults (crashes of a replica or of the database) stop LEASE units
 *   before the clock's end, so that every lease they leave behind ends
 *   within the run, and the run's end can demand that every published
 *   delivery be finished.
 */

#ifndef N
#define N 2            /* deliveries */
#endif
#ifndef R
#define R 2            /* dispatcher replicas */
#endif
#ifndef TMAX
#define TMAX 5         /* the clock's last value */
#endif
#ifndef CRASHES
#define CRASHES 1      /* replica crashes: SIGKILL, started again at once */
#endif
#ifndef DBCRASHES
#define DBCRASHES 1    /* database crashes that lose asynchronous commits */
#endif
#ifndef RETRIES
#define RETRIES 1      /* "retry later" outcomes in all */
#endif
#ifndef RELEASES
#define RELEASES 1     /* holds given back unattempted, in all */
#endif
#ifndef REDELIVERIES
#define REDELIVERIES 0 /* operator redeliveries of a finished delivery */
#endif
#define B 2            /* the LIMIT of a claim or a sweep */
#define LEASE 2
#define NT 9           /* token numbers 1..NT-1; 0 is NULL */
#define NS (R * N)     /* hold slots: one per replica and delivery */

#define UNPUBLISHED 0
#define PENDING 1
#define DONE 2         /* delivered, failed (gave up) or cancelled */
#define NONE 255       /* Hold.was_due is None: the hold is by token */

#define key(d) (due[d] * N + d)
#define slot(r, d) ((r) * N + (d))
#define bit(d) (1 << (d))

/* ---- the database: deliveries, queue_cursor, claims ---- */
byte status[N];
byte due[N];           /* deliveries.next_attempt_at */
byte token[N];         /* deliveries.lease_token; 0 is NULL */
short cursor = -1;     /* queue_cursor (due, id), as a key */
bool live[NT];         /* a claims row with this token exists */
byte until[NT];        /* claims.until */
byte ids[NT];          /* claims.ids, as a bit set */
byte version[N];       /* ghost: changes with every write to the row */
byte owner[N];         /* ghost: 1 + the slot of the hold the database last
                        * gave the row to (a claim, a sweep, a hand-off);
                        * 0 once an outcome is written */

/* The database as of its last synchronous commit: a crash goes back to
 * it, losing the claims and sweeps committed since (Role::Claims commits
 * with synchronous_commit off). Kept only while a crash may still come. */
bool snap = DBCRASHES > 0;
byte s_status[N]; byte s_due[N]; byte s_token[N]; byte s_version[N]; byte s_owner[N];
short s_cursor = -1;
bool s_live[NT]; byte s_until[NT]; byte s_ids[NT];

/* ---- each replica's memory: its holds (queue::Hold) ---- */
byte hold_tok[NS];     /* Hold.token; 0: no hold */
byte hold_was[NS];     /* Hold.was_due; NONE when held by the token on the row */
bool hold_batch[NS];   /* Hold.batch: the token names a claims row */
byte hold_until[NS];   /* the lease's end */
byte hold_ver[NS];     /* ghost: version[d] when the hold was taken */
bool attempted[NS];    /* the request was sent: the outcome counts an attempt */

/* ---- ghosts for the properties, and the run's bounds ---- */
byte now = 0;
bool faulted = false;  /* a crash, a database crash or an ended lease */
bool unsettled[N];     /* an attempt's request reached the endpoint, its outcome not yet written */
bool finished[N];      /* a terminal outcome was written in this series */
byte crashes, dbcrashes, retries, releases, redeliveries;

byte ntok;             /* tokens in use (canon() keeps them 1..ntok) */

/* scratch of the atomic steps, not part of the state */
hidden byte i, j, d, t, e, taken, best, tk, nt;
hidden byte found, applies, rest;
hidden byte map[NT];
hidden byte n_live[NT]; hidden byte n_until[NT]; hidden byte n_ids[NT];
hidden byte n_s_live[NT]; hidden byte n_s_until[NT]; hidden byte n_s_ids[NT];
hidden int bestkey;

#define in_live_batch(x) (live[1] && until[1] > now && (ids[1] & bit(x)) || \
                          live[2] && until[2] > now && (ids[2] & bit(x)) || \
                          live[3] && until[3] > now && (ids[3] & bit(x)) || \
                          live[4] && until[4] > now && (ids[4] & bit(x)) || \
                          live[5] && until[5] > now && (ids[5] & bit(x)) || \
                          live[6] && until[6] > now && (ids[6] & bit(x)) || \
                          live[7] && until[7] > now && (ids[7] & bit(x)) || \
                          live[8] && until[8] > now && (ids[8] & bit(x)))
#define claimable(x) (status[x] == PENDING && key(x) > cursor && due[x] <= now)
#ifdef MUT_SWEEP_TAKES_LIVE
#define sweepable(x) (status[x] == PENDING && key(x) <= cursor && due[x] <= now)
#else
#define sweepable(x) (status[x] == PENDING && key(x) <= cursor && due[x] <= now && !in_live_batch(x))
#endif
#define held(s) (hold_tok[s] != 0)
#if N == 2
#define any_claimable (claimable(0) || claimable(1))
#define any_sweepable (sweepable(0) || sweepable(1))
#define all_finished (status[0] != PENDING && status[1] != PENDING)
#elif N == 3
#define any_claimable (claimable(0) || claimable(1) || claimable(2))
#define any_sweepable (sweepable(0) || sweepable(1) || sweepable(2))
#define all_finished (status[0] != PENDING && status[1] != PENDING && status[2] != PENDING)
#endif

/* The properties. check.sh checks each on its own (-DONLY=n) against the
 * mutation meant to break it, so that a counterexample of one cannot
 * stand in for another's. */
#if !defined(ONLY) || ONLY == 1
#define P1(e) assert(e)
#else
#define P1(e) skip
#endif
#if !defined(ONLY) || ONLY == 2
#define P2(e) assert(e)
#else
#define P2(e) skip
#endif
#if !defined(ONLY) || ONLY == 3
#define P3(e) assert(e)
#else
#define P3(e) skip
#endif
#if !defined(ONLY) || ONLY == 4
#define P4(e) assert(e)
#else
#define P4(e) skip
#endif

#include "canon.pml"
#include "show.pml"

/* The current state becomes the one a database crash returns to. */
inline commit_sync() {
    if
    :: snap ->
        for (i : 0 .. N - 1) {
            s_status[i] = status[i]; s_due[i] = due[i]; s_token[i] = token[i]; s_version[i] = version[i];
            s_owner[i] = owner[i]
        }
        for (i : 0 .. NT - 1) { s_live[i] = live[i]; s_until[i] = until[i]; s_ids[i] = ids[i] }
        s_cursor = cursor
    :: else -> skip
    fi
}

/* A write to delivery x's row: a fresh version (canon() renumbers it). */
inline touch(x) { version[x] = 7 }

/* Token numbers are bounded: mint() asserts that the bound is never
 * reached. Only a mutation that makes sweeps take live rows over and over
 * reaches it; there, claims and sweeps wait for a free number instead, so
 * that the search goes on to the property the mutation breaks. */
#ifdef MUT_SWEEP_TAKES_LIVE
#define room (ntok < NT - 1)
#else
#define room true
#endif

/* The first token number no row and no hold uses (canon() keeps them
 * dense, so it is one past the last). */
inline mint() {
    t = 1;
    do
    :: t < NT && (live[t] || s_live[t] || map[t] != 0) -> t++
    :: else -> break
    od;
    assert(t < NT)
}

/* A hold of x for replica r under token t. */
inline take(r, x, t, was, batch) {
    owner[x] = slot(r, x) + 1;
    hold_tok[slot(r, x)] = t; hold_was[slot(r, x)] = was; hold_batch[slot(r, x)] = batch;
    hold_until[slot(r, x)] = now + LEASE; hold_ver[slot(r, x)] = version[x];
    attempted[slot(r, x)] = false
}

inline drop(s) {
    hold_tok[s] = 0; hold_was[s] = 0; hold_batch[s] = false; hold_until[s] = 0;
    hold_ver[s] = 0; attempted[s] = false
}

/* events::insert, committed synchronously. Without a hand-off the row is
 * due at now() of its transaction, which may commit later, behind the
 * cursor (the late publish). With a hand-off to replica r, the row carries
 * that process's token and is due when the hand-off's lease ends. */
proctype Publisher() {
    byte x, r, started;
    do
    :: x < N && now + LEASE < TMAX ->
        if
        :: atomic { started = now };
           d_step {
               status[x] = PENDING; due[x] = started; touch(x); canon(); commit_sync(); show("publish")
           }
        :: atomic {
               room -> select(r : 0 .. R - 1);
               d_step {
                   refs(); mint();
                   status[x] = PENDING; due[x] = now + LEASE; token[x] = t; touch(x);
                   take(r, x, t, NONE, false); canon(); commit_sync(); show("publish with hand-off")
               }
           }
        fi;
        x++; started = 0; r = 0
    :: else -> break
    od
}

/* deliveries::redeliver: a finished delivery pending again, due at now()
 * of its transaction (which starts after the finishing outcome
 * committed), as a new series. */
#define redeliverable(x) (redeliveries < REDELIVERIES && now + LEASE < TMAX && status[x] == DONE && due[x] < now)
proctype Operator() {
    byte x, started;
end:
    do
    :: atomic {
           if
           :: redeliverable(0) -> x = 0
           :: redeliverable(1) -> x = 1
#if N > 2
           :: redeliverable(2) -> x = 2
#endif
           fi;
           redeliveries++; started = now
        };
        d_step {
            status[x] == DONE ->
            status[x] = PENDING; due[x] = started; token[x] = 0; touch(x);
            finished[x] = false; unsettled[x] = false; canon(); commit_sync(); show("redeliver")
        };
        x = 0; started = 0
    od
}

/* queue::CLAIM: up to B due rows after the cursor, in key order; the
 * cursor moves to the last taken; a hand-off's token is cleared, which
 * fences off its holder; one claims row for the batch. */
inline claim(r) {
    d_step {
        any_claimable && room ->
        refs(); mint();
        taken = 0;
        do
        :: taken < B ->
            found = false;
            for (d : 0 .. N - 1) {
                if
                :: claimable(d) && (!found || key(d) < key(best)) -> best = d; found = true
                :: else -> skip
                fi
            }
            if
            :: found ->
#ifndef MUT_KEEP_HANDOFF_TOKEN
                if
                :: token[best] != 0 -> token[best] = 0; touch(best)
                :: else -> skip
                fi;
#endif
                ids[t] = ids[t] | bit(best);
                take(r, best, t, due[best], true);
                cursor = key(best); taken++
            :: else -> break
            fi
        :: else -> break
        od;
        live[t] = true; until[t] = now + LEASE;
        canon(); show("claim")
    }
}

/* queue::SWEEP, holding the cursor's lock: deletes the claims rows whose
 * lease ended, and takes up to B due rows behind the cursor, due from
 * `from` on (0 for the periodic sweep; a late publish's due time for the
 * one its NOTIFY starts), that are in no live batch, writing its token on
 * each. A sweep that takes nothing writes no claims row. */
inline sweep(r, from) {
    d_step {
        any_sweepable && room ->
        for (i : 1 .. NT - 1) {
            if
            :: live[i] && until[i] <= now -> live[i] = false; until[i] = 0; ids[i] = 0
            :: else -> skip
            fi
        }
        refs(); mint();
        taken = 0;
        for (d : 0 .. N - 1) {
            if
            :: taken < B && sweepable(d) && due[d] >= from ->
                token[d] = t; touch(d); ids[t] = ids[t] | bit(d);
                take(r, d, t, NONE, true); taken++
            :: else -> skip
            fi
        }
        if
        :: taken > 0 -> live[t] = true; until[t] = now + LEASE
        :: else -> skip
        fi;
        canon(); show("sweep")
    }
}

/* worker: the registration resolved, the request sent: the partner's
 * endpoint has it. P4: a request is repeated only after a fault. */
inline attempt(r, x) {
    d_step {
        held(slot(r, x)) && !attempted[slot(r, x)] ->
        P4(faulted || !unsettled[x]);
        if
        :: !faulted -> unsettled[x] = true
        :: else -> skip
        fi;
        attempted[slot(r, x)] = true; show("attempt")
    }
}

/* A hold from the cursor names its claims row, which must still be there:
 * a claim lost in a database crash (its row gone, the cursor back) fences
 * off its holder, whose lease no longer exists. */
#ifdef MUT_NO_CLAIMS_ROW_CHECK
#define claims_row(tk) true
#else
#define claims_row(tk) live[tk]
#endif

/* queue::COMPLETE for x's outcome, written only under r's hold: by the
 * token on the row, or (a hold from the cursor) while the row is pending,
 * unleased, at the due time the claim found. The statement also deletes
 * the claims row of the batch whose last outcome this is. (The completer
 * writes several outcomes in one statement; one at a time allows every
 * order that does, and more.) */
inline write(r, x, outcome, next_due) {
    j = slot(r, x); tk = hold_tok[j];
#ifdef MUT_NO_FENCE
    applies = true;
#else
    if
    :: hold_was[j] == NONE -> applies = token[x] == tk
    :: else -> applies = status[x] == PENDING && token[x] == 0 && due[x] == hold_was[j] && claims_row(tk)
    fi;
#endif
    if
    :: applies ->
        /* P1: one terminal state per series, and an outcome written
         * only where the row is as its hold found it. */
        P1(outcome != DONE || !finished[x]);
        P1(version[x] == hold_ver[j]);
        /* P2, fencing: the database gave the row to no other hold since
         * this one (a take it lost in a crash does not count). */
        P2(owner[x] == j + 1);
        owner[x] = 0;
        status[x] = outcome; due[x] = next_due; token[x] = 0; touch(x);
        if
        :: outcome == DONE -> finished[x] = true
        :: else -> skip
        fi;
        if
        :: attempted[j] -> unsettled[x] = false
        :: else -> skip
        fi
    :: else -> skip
    fi;
    rest = false;
#ifndef MUT_EARLY_BATCH_DELETE
    for (e : 0 .. N - 1) {
        rest = rest || e != x && hold_tok[slot(r, e)] == tk
    }
#endif
    if
    :: hold_batch[j] && !rest -> live[tk] = false; until[tk] = 0; ids[tk] = 0
    :: else -> skip
    fi;
    drop(j);
    canon(); commit_sync(); show("complete")
}

/* The outcomes a hold can end in. After an attempt: delivered, or failed
 * and given up (terminal), or failed and retried later (RETRIES in all),
 * due one unit after the attempt ended. Unattempted: the registration
 * resolved to no subscriber (cancelled, terminal), or the hold given
 * back (worker::release: shutdown, an endpoint backing off), due later. */
inline complete(r, x) {
    if
    :: d_step { held(slot(r, x)) -> write(r, x, DONE, now) }
    :: d_step {
           held(slot(r, x)) && attempted[slot(r, x)] && retries < RETRIES && now + LEASE < TMAX ->
           retries++; write(r, x, PENDING, now + 1)
       }
    :: d_step {
           held(slot(r, x)) && !attempted[slot(r, x)] && releases < RELEASES && now + LEASE < TMAX ->
           releases++; write(r, x, PENDING, now + 1)
       }
    fi
}

/* SIGKILL, and the replica started again at once: what it held is gone;
 * what its endpoints received stays received. */
inline crash(r) {
    d_step {
        crashes < CRASHES && now + LEASE < TMAX ->
        crashes++; faulted = true;
        for (d : 0 .. N - 1) { drop(slot(r, d)) }
        canon(); show("replica crash")
    }
}

proctype Replica(byte r) {
    byte f;
end:
    do
    :: claim(r)
#ifndef MUT_NO_SWEEP
    :: atomic { any_sweepable && room -> select(f : 0 .. now); sweep(r, f); f = 0 }
#endif
    :: attempt(r, 0)
    :: attempt(r, 1)
    :: complete(r, 0)
    :: complete(r, 1)
#if N > 2
    :: attempt(r, 2)
    :: complete(r, 2)
#endif
    :: crash(r)
    od
}

/* A database crash: back to the last synchronous commit. The replicas
 * keep what they hold. */
proctype Database() {
end:
    do
    :: d_step {
           dbcrashes < DBCRASHES && now + LEASE < TMAX ->
           dbcrashes++; faulted = true;
           for (i : 0 .. N - 1) {
               status[i] = s_status[i]; due[i] = s_due[i]; token[i] = s_token[i]; version[i] = s_version[i];
               owner[i] = s_owner[i]
           }
           for (i : 0 .. NT - 1) { live[i] = s_live[i]; until[i] = s_until[i]; ids[i] = s_ids[i] }
           cursor = s_cursor;
           if
           :: dbcrashes == DBCRASHES -> snap = false   /* no crash to come: forget the copy */
           :: else -> skip
           fi;
           canon(); show("database crash")
       }
    od
}

/* Time passes. A lease that ends while its holder still holds the
 * delivery is a fault (the holder stalled): P4 allows a repeat after it. */
proctype Clock() {
end:
    do
    :: d_step {
           now < TMAX -> now++;
           for (i : 0 .. NS - 1) {
               if
               :: held(i) && hold_until[i] <= now -> faulted = true
               :: else -> skip
               fi
           }
           canon()
       }
    od
}

/* P3, no loss: once nothing can happen any more (the clock at its end,
 * every lease ended, every replica idle), no published delivery is still
 * pending. (Events the clock left unpublished were never accepted.) */
proctype Quiescence() {
    timeout -> P3(all_finished)
}

init {
    atomic {
        for (i : 0 .. R - 1) { run Replica(i) }
        run Publisher();
        run Operator();
        run Database();
        run Clock();
        run Quiescence()
    }
}
