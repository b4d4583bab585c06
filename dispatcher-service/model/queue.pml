/*
 * The delivery queue's protocol (dispatcher-service/src/storage/queue.rs,
 * storage/events.rs, delivery/worker.rs, delivery/completer.rs), for SPIN.
 * docs/decisions/0004-the-delivery-queue-is-model-checked.md explains the
 * protocol in prose; check.sh runs every check and every mutation.
 *
 * Abstractions:
 * - Each SQL statement is one atomic step: Postgres runs it as one
 *   snapshot under the locks it takes (claims and sweeps hold the cursor's
 *   row lock, which orders them).
 * - Time is a small integer `now`, advanced by the Clock process. A row's
 *   place in the due index is key(d) = due[d] * N + d, the (due, id) order.
 * - Outcomes due again (a retry, a release) are due one unit after the
 *   attempt (or release) that decided them, as the worker computes
 *   `next_attempt_at` when the attempt ends and the completer writes it
 *   later: later than the claim that took the row.
 * - A replica holds at most one hold per delivery; a second hold of the
 *   same delivery (possible only after a lost claim) replaces the first.
 * - Faults (replica crashes, a database crash) stop LEASE time units
 *   before the clock's end, so that every lease they leave behind ends
 *   within the run; the run's end (all processes blocked at TMAX) then
 *   must find every published delivery terminal.
 */

#ifndef N
#define N 2            /* deliveries: 2 or 3 */
#endif
#ifndef R
#define R 2            /* dispatcher replicas */
#endif
#define B 2            /* LIMIT of a claim or a sweep */
#define LEASE 2
#ifndef TMAX
#define TMAX 7
#endif
#define MAXTOK (N * 8 + 4)  /* tokens minted: claims, sweeps, hand-offs */
#define RETRIES 1      /* "retry later" outcomes per delivery */
#define RELEASES 1     /* releases per delivery */
#ifndef CRASHES
#define CRASHES 1      /* replica crashes (SIGKILL, started again at once) */
#endif
#ifndef DBCRASHES
#define DBCRASHES 1    /* database crashes (asynchronous commits lost) */
#endif

#define UNPUBLISHED 0
#define PENDING 1
#define DELIVERED 2
#define FAILED 3
#define NONE 255       /* Hold.was_due is None: the hold is by token */

#define key(d) (due[d] * N + d)
#define slot(r, d) ((r) * N + (d))

/* ---- the database: deliveries, queue_cursor, claims ---- */
byte status[N];
byte due[N];           /* deliveries.next_attempt_at */
byte token[N];         /* deliveries.lease_token, 0 = NULL */
short cursor = -1;     /* queue_cursor (due, id), as a key */
bool live[MAXTOK];     /* a claims row exists for this token */
byte until[MAXTOK];    /* claims.until (for a hand-off: its lease's end) */
byte rowof[N];         /* the latest claims row whose ids hold the delivery */
/* Ghost: bumped by every write to the row, so a hold knows whether the
 * row is still as its claim found it. */
byte version[N];

/* The state of the last synchronous commit: a database crash returns to
 * it, losing the claims and sweeps committed since (they commit with
 * synchronous_commit off; see queue::Role::Claims). */
byte s_status[N]; byte s_due[N]; byte s_token[N]; byte s_rowof[N]; byte s_version[N];
short s_cursor;
bool s_live[MAXTOK]; byte s_until[MAXTOK];

byte now = 0;
byte minted = 0;
byte crashes = 0;
byte dbcrashes = 0;
byte faults = 0;       /* crashes, database crashes, leases that ended */

/* ---- each replica's memory ---- */
byte hold_tok[R * N];  /* Hold.token, 0 = no hold */
byte hold_was[R * N];  /* Hold.was_due, NONE when held by token */
bool hold_batch[R * N];
byte hold_ver[R * N];  /* ghost: version[d] when the hold was taken */
byte outcome[R * N];   /* 0 none yet; else the status to write */
byte outcome_due[R * N];  /* for a pending outcome, its next due time */
bool attempted[R * N];

/* ---- ghosts for the properties ---- */
byte received[N];      /* requests the partner's endpoint received */
byte settled[N];       /* attempts whose outcome was written */
byte terminal_writes[N];
byte retries[N];       /* bounds on the run's length, not protocol state */
byte releases[N];

#define in_live_batch(d) (rowof[d] != 0 && live[rowof[d]] && until[rowof[d]] > now)
#define claimable(d) (status[d] == PENDING && key(d) > cursor && due[d] <= now)
#define sweepable(d) (status[d] == PENDING && key(d) <= cursor && due[d] <= now && !in_live_batch(d))
#define has_outcome(r, d) (outcome[slot(r, d)] != 0)
#if N == 2
#define any_claimable (claimable(0) || claimable(1))
#define any_sweepable (sweepable(0) || sweepable(1))
#define any_outcome(r) (has_outcome(r, 0) || has_outcome(r, 1))
#define settled_row(d) (status[d] != PENDING)
#define all_terminal (settled_row(0) && settled_row(1))
#else
#define any_claimable (claimable(0) || claimable(1) || claimable(2))
#define any_sweepable (sweepable(0) || sweepable(1) || sweepable(2))
#define any_outcome(r) (has_outcome(r, 0) || has_outcome(r, 1) || has_outcome(r, 2))
#define settled_row(d) (status[d] != PENDING)
#define all_terminal (settled_row(0) && settled_row(1) && settled_row(2))
#endif

inline snapshot() {
    i = 0;
    do
    :: i < N -> s_status[i] = status[i]; s_due[i] = due[i]; s_token[i] = token[i];
                s_rowof[i] = rowof[i]; s_version[i] = version[i]; i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < MAXTOK -> s_live[i] = live[i]; s_until[i] = until[i]; i++
    :: else -> break
    od;
    s_cursor = cursor;
    i = 0
}

inline mint(t) {
    assert(minted < MAXTOK - 1);
    minted++;
    t = minted
}

/* A claim or a sweep takes d as token t: if a replica still holds it, that
 * hold's lease ended (a fault: the holder crashed or stalled) or the
 * protocol let two holders hold it at once (which P4 then catches). */
inline take(r, d, t, was) {
    q = 0;
    do
    :: q < R -> if
                :: hold_tok[slot(q, d)] != 0 && until[hold_tok[slot(q, d)]] <= now -> faults++
                :: else -> skip
                fi; q++
    :: else -> break
    od;
    hold_tok[slot(r, d)] = t;
    hold_was[slot(r, d)] = was;
    hold_batch[slot(r, d)] = true;
    hold_ver[slot(r, d)] = version[d];
    outcome[slot(r, d)] = 0;
    attempted[slot(r, d)] = false;
    rowof[d] = t;
    q = 0
}

/* events::insert: a publish, committed synchronously. With a hand-off
 * (to replica r) the row carries that replica's token and is due when
 * that lease ends (storage/events.rs, `scheduled`); without, it is due
 * now. A late publish reads now() when its transaction starts and commits
 * later, possibly behind the cursor. */
proctype Publisher() {
    byte d, t, r, started, i;
    do
    :: d < N ->
        if
        :: d_step { now + LEASE < TMAX -> status[d] = PENDING; due[d] = now; version[d]++; snapshot() }
        :: now + LEASE < TMAX && minted < MAXTOK - 1 ->
           atomic {
               select(r : 0 .. R - 1); mint(t);
               status[d] = PENDING; due[d] = now + LEASE; token[d] = t; version[d]++; until[t] = due[d];
               hold_tok[slot(r, d)] = t; hold_was[slot(r, d)] = NONE; hold_batch[slot(r, d)] = false;
               hold_ver[slot(r, d)] = version[d]; outcome[slot(r, d)] = 0; attempted[slot(r, d)] = false;
               snapshot()
           }
        :: atomic { now + LEASE + 1 < TMAX -> started = now };
           d_step { now > started -> status[d] = PENDING; due[d] = started; version[d]++; snapshot() }
        :: now + LEASE >= TMAX -> break   /* too late to publish within the run */
        fi;
        d++
    :: else -> break
    od
}

/* queue::CLAIM: up to B due rows after the cursor, in key order; the
 * cursor moves to the last; a hand-off's token is cleared, which fences
 * off its holder; one claims row for the batch. */
inline claim(r) {
    d_step {
        any_claimable ->
        mint(t);
        taken = 0;
        do
        :: taken < B ->
            found = false; d = 0;
            do
            :: d < N -> if
                        :: claimable(d) && (!found || key(d) < key(best)) -> best = d; found = true
                        :: else -> skip
                        fi; d++
            :: else -> break
            od;
            if
            :: found ->
#ifndef MUT_KEEP_HANDOFF_TOKEN
                if
                :: token[best] != 0 -> token[best] = 0; version[best]++
                :: else -> skip
                fi;
#endif
                live[t] = true; until[t] = now + LEASE;
                take(r, best, t, due[best]); cursor = key(best); taken++
            :: else -> break
            fi
        :: else -> break
        od;
        d = 0; best = 0; found = false; taken = 0
    }
}

/* queue::SWEEP (holding the cursor's lock): deletes ended claims rows and
 * takes up to B due rows behind the cursor, from `from` on, that are in no
 * live batch, writing its token on each. `from` is 0 for the periodic
 * sweep, later for one after a late NOTIFY. */
inline sweep(r) {
    d_step {
        any_sweepable ->
        from = 0;
        k = 1;
        do
        :: k < MAXTOK -> if
                         :: live[k] && until[k] <= now -> live[k] = false
                         :: else -> skip
                         fi; k++
        :: else -> break
        od;
        taken = 0; d = 0;
        do
        :: d < N -> if
#ifdef MUT_SWEEP_TAKES_LIVE
                    :: status[d] == PENDING && due[d] >= from && key(d) <= cursor && due[d] <= now -> taken++
#else
                    :: sweepable(d) && due[d] >= from -> taken++
#endif
                    :: else -> skip
                    fi; d++
        :: else -> break
        od;
        if
        :: taken > 0 ->   /* an empty sweep writes no row */
            mint(t);
            live[t] = true; until[t] = now + LEASE;
            taken = 0; d = 0;
            do
            :: d < N && taken < B ->
                if
#ifdef MUT_SWEEP_TAKES_LIVE
                :: status[d] == PENDING && due[d] >= from && key(d) <= cursor && due[d] <= now ->
#else
                :: sweepable(d) && due[d] >= from ->
#endif
                    token[d] = t; version[d]++; take(r, d, t, NONE); taken++
                :: else -> skip
                fi;
                d++
            :: else -> break
            od
        :: else -> skip
        fi;
        d = 0; k = 0; from = 0; taken = 0
    }
}

/* worker::attempt: the partner's endpoint receives the request; the
 * outcome waits for the completer. */
inline attempt(r, d) {
    atomic {
        hold_tok[slot(r, d)] != 0 && !attempted[slot(r, d)] && outcome[slot(r, d)] == 0 ->
        /* P4: a request is repeated only after a fault. */
        assert(received[d] <= settled[d] || faults > 0);
        received[d]++;
        attempted[slot(r, d)] = true;
        if
        :: outcome[slot(r, d)] = DELIVERED
        :: outcome[slot(r, d)] = FAILED                            /* gave up */
        :: now + LEASE < TMAX && retries[d] < RETRIES ->
           retries[d]++; outcome[slot(r, d)] = PENDING; outcome_due[slot(r, d)] = now + 1   /* retry later */
        fi
    }
}

/* worker::release: a held delivery given back unattempted (shutdown, an
 * endpoint backing off): a pending outcome that counts no attempt. */
inline release(r, d) {
    atomic {
        hold_tok[slot(r, d)] != 0 && !attempted[slot(r, d)] && outcome[slot(r, d)] == 0 && now + LEASE < TMAX && releases[d] < RELEASES ->
        releases[d]++; outcome[slot(r, d)] = PENDING; outcome_due[slot(r, d)] = now + 1
    }
}

/* queue::COMPLETE, a batch of outcomes in one synchronous statement: each
 * written only under its hold; the claims rows of batches whose last
 * outcome this is are deleted. */
inline complete(r) {
    d_step {
        any_outcome(r) ->
        d = 0;
        do
        :: d < N && has_outcome(r, d) ->
            tk = hold_tok[slot(r, d)];
#ifdef MUT_NO_FENCE
            applies = status[d] == PENDING;
#else
            if
            :: hold_was[slot(r, d)] == NONE -> applies = token[d] == tk
            :: else -> applies = status[d] == PENDING && token[d] == 0 && due[d] == hold_was[slot(r, d)]
            fi;
#endif
            if
            :: applies ->
                /* P2: written only under the hold that took the row, the
                 * row unchanged since. */
                assert(version[d] == hold_ver[slot(r, d)]);
                status[d] = outcome[slot(r, d)]; token[d] = 0; version[d]++;
                if
                :: status[d] == PENDING -> due[d] = outcome_due[slot(r, d)]
                :: else -> terminal_writes[d]++;
                           assert(terminal_writes[d] == 1)   /* P1: one terminal state */
                fi;
                if
                :: attempted[slot(r, d)] -> settled[d]++
                :: else -> skip
                fi
            :: else -> skip
            fi;
            hold_tok[slot(r, d)] = 0; outcome[slot(r, d)] = 0; attempted[slot(r, d)] = false;
            rest = false;
#ifndef MUT_EARLY_BATCH_DELETE
            e = 0;
            do
            :: e < N -> rest = rest || hold_tok[slot(r, e)] == tk; e++
            :: else -> break
            od;
#endif
            if
            :: hold_batch[slot(r, d)] && !rest -> live[tk] = false
            :: else -> skip
            fi;
            d++
        :: d < N && !has_outcome(r, d) -> d++
        :: else -> break
        od;
        snapshot();
        d = 0; e = 0; tk = 0; applies = false; rest = false
    }
}

/* SIGKILL, and the replica started again at once: what it held is gone;
 * what its endpoint requests reached stays received. */
inline crash(r) {
    d_step {
        crashes < CRASHES && now + LEASE < TMAX ->
        crashes++; faults++;
        d = 0;
        do
        :: d < N -> hold_tok[slot(r, d)] = 0; outcome[slot(r, d)] = 0; attempted[slot(r, d)] = false; d++
        :: else -> break
        od;
        d = 0
    }
}

proctype Replica(byte r) {
    byte d, t, taken, best, k, from, tk, e, q, i;
    bool found, applies, rest;
end:
    do
    :: claim(r)
#ifndef MUT_NO_SWEEP
    :: sweep(r)
#endif
    :: attempt(r, 0)
    :: attempt(r, 1)
#if N > 2
    :: attempt(r, 2)
#endif
    :: release(r, 0)
    :: release(r, 1)
#if N > 2
    :: release(r, 2)
#endif
    :: complete(r)
    :: crash(r)
    od
}

/* A database crash: what committed asynchronously since the last
 * synchronous commit is gone; replicas keep what they hold. */
proctype Database() {
    byte i;
end:
    do
    :: d_step {
           dbcrashes < DBCRASHES && now + LEASE < TMAX ->
           dbcrashes++; faults++;
           i = 0;
           do
           :: i < N -> status[i] = s_status[i]; due[i] = s_due[i]; token[i] = s_token[i];
                       rowof[i] = s_rowof[i]; version[i] = s_version[i]; i++
           :: else -> break
           od;
           i = 0;
           do
           :: i < MAXTOK -> live[i] = s_live[i]; until[i] = s_until[i]; i++
           :: else -> break
           od;
           cursor = s_cursor;
           i = 0
       }
    od
}

proctype Clock() {
end:
    do
    :: now < TMAX -> now++
    od
}

/* P3, no loss: once nothing can happen any more (the clock at its end,
 * every lease ended, every replica idle), no published delivery is still
 * pending. (The clock may end before every event was published; those
 * were never accepted.) */
proctype Quiescence() {
    timeout -> assert(all_terminal)
}

init {
    byte r, i;
    atomic {
        snapshot();
        r = 0;
        do
        :: r < R -> run Replica(r); r++
        :: else -> break
        od;
        run Publisher();
        run Database();
        run Clock();
        run Quiescence()
    }
}
