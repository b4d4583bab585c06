/*
 * Canonical names for tokens and versions (included by queue.pml).
 *
 * A token stands for a uuid, and a version only says whether a row is as a
 * hold found it; neither's number means anything. Renaming both after
 * every step, in the order they are first referred to, makes two states
 * that differ only in names one state, which is what lets the search
 * finish. Ghosts that can no longer matter are cleared for the same
 * reason: once a fault happened, P4 asks nothing and leases need no end.
 */

hidden byte vm[8];
hidden byte nv, ra, rb, pass, cmp;
hidden int code_a, code_b;

/* What a hold slot holds, without naming its token: the replicas are
 * alike, so two states that differ only in which replica holds what are
 * one state, and canon() puts the replicas in the order of these codes. */
#define code(s, x) ((((((((hold_tok[s] != 0) * 2 + attempted[s]) * 2 + (owner[x] == s + 1)) * 2 + \
                      (s_owner[x] == s + 1)) * 2 + hold_batch[s]) * 256 + \
                     hold_was[s]) * 8 + hold_until[s]) * 8 + \
                    (hold_ver[s] == version[x]) * 4 + (hold_ver[s] == s_version[x]) * 2 + \
                    (hold_tok[s] != 0 && hold_tok[s] == token[x]))

#define swap_field(f, a, b) cmp = f[a]; f[a] = f[b]; f[b] = cmp

/* Replicas a and b (a < b) in the order of their holds' codes. */
inline order_pair(a, b) {
    cmp = 0;
    for (e : 0 .. N - 1) {
        code_a = code(slot(a, e), e); code_b = code(slot(b, e), e);
        if
        :: cmp == 0 && code_a < code_b -> cmp = 1
        :: cmp == 0 && code_a > code_b -> cmp = 2
        :: else -> skip
        fi
    }
    if
    :: cmp == 2 ->
       for (e : 0 .. N - 1) {
           swap_field(hold_tok, slot(a, e), slot(b, e)); swap_field(hold_was, slot(a, e), slot(b, e));
           swap_field(hold_batch, slot(a, e), slot(b, e)); swap_field(hold_until, slot(a, e), slot(b, e));
           swap_field(hold_ver, slot(a, e), slot(b, e)); swap_field(attempted, slot(a, e), slot(b, e));
           if
           :: owner[e] == slot(a, e) + 1 -> owner[e] = slot(b, e) + 1
           :: owner[e] == slot(b, e) + 1 -> owner[e] = slot(a, e) + 1
           :: else -> skip
           fi;
           if
           :: s_owner[e] == slot(a, e) + 1 -> s_owner[e] = slot(b, e) + 1
           :: s_owner[e] == slot(b, e) + 1 -> s_owner[e] = slot(a, e) + 1
           :: else -> skip
           fi
       }
    :: else -> skip
    fi;
    cmp = 0; code_a = 0; code_b = 0
}

inline order_replicas() {
    for (pass : 1 .. R - 1) {
        for (ra : 0 .. R - 1 - pass) { rb = ra + 1; order_pair(ra, rb) }
    }
    pass = 0; ra = 0; rb = 0
}

inline ref(x) {
    if
    :: x != 0 && map[x] == 0 -> nt++; map[x] = nt
    :: else -> skip
    fi
}

/* map[t] != 0 for every token a hold or a row refers to, numbered in the
 * order of first reference. */
inline refs() {
    for (i : 0 .. NT - 1) { map[i] = 0 }
    nt = 0;
    for (i : 0 .. NS - 1) { ref(hold_tok[i]) }
    for (i : 0 .. N - 1) { ref(token[i]) }
    for (i : 0 .. N - 1) { ref(s_token[i]) }
}

#define rowcontent(x) (((live[x] * 8 + until[x]) * 16 + ids[x]) * 256 + \
                       (s_live[x] * 8 + s_until[x]) * 16 + s_ids[x])

inline vref(x) {
    if
    :: vm[x] == 255 -> vm[x] = nv; nv++
    :: else -> skip
    fi
}

inline canon() {
#ifndef NO_SYMMETRY
    order_replicas();
#endif
    refs();
    /* claims rows no hold or row refers to, in the order of their content */
    do
    :: found = false;
       for (i : 1 .. NT - 1) {
           if
           :: map[i] == 0 && (live[i] || s_live[i]) && (!found || rowcontent(i) < bestkey) ->
              found = true; best = i; bestkey = rowcontent(i)
           :: else -> skip
           fi
       }
       if
       :: found -> nt++; map[best] = nt
       :: else -> break
       fi
    od;
    for (i : 0 .. NT - 1) {
        n_live[i] = false; n_until[i] = 0; n_ids[i] = 0;
        n_s_live[i] = false; n_s_until[i] = 0; n_s_ids[i] = 0
    }
    for (i : 1 .. NT - 1) {
        if
        :: map[i] != 0 ->
           n_live[map[i]] = live[i]; n_until[map[i]] = until[i]; n_ids[map[i]] = ids[i];
           n_s_live[map[i]] = s_live[i]; n_s_until[map[i]] = s_until[i]; n_s_ids[map[i]] = s_ids[i]
        :: else -> skip
        fi
    }
    for (i : 0 .. NT - 1) {
        live[i] = n_live[i]; until[i] = n_until[i]; ids[i] = n_ids[i];
        s_live[i] = n_s_live[i]; s_until[i] = n_s_until[i]; s_ids[i] = n_s_ids[i]
    }
    ntok = nt;
    for (i : 0 .. NS - 1) { hold_tok[i] = map[hold_tok[i]] }
    for (i : 0 .. N - 1) { token[i] = map[token[i]]; s_token[i] = map[s_token[i]] }

    /* versions: per delivery, only which are equal */
    for (e : 0 .. N - 1) {
        for (i : 0 .. 7) { vm[i] = 255 }
        nv = 0;
        vref(version[e]);
        if
        :: snap -> vref(s_version[e])
        :: else -> skip
        fi;
        for (i : 0 .. R - 1) {
            if
            :: hold_tok[slot(i, e)] != 0 -> vref(hold_ver[slot(i, e)])
            :: else -> skip
            fi
        }
        version[e] = vm[version[e]];
        if
        :: snap -> s_version[e] = vm[s_version[e]]
        :: else -> s_version[e] = 0
        fi;
        for (i : 0 .. R - 1) {
            if
            :: hold_tok[slot(i, e)] != 0 -> hold_ver[slot(i, e)] = vm[hold_ver[slot(i, e)]]
            :: else -> hold_ver[slot(i, e)] = 0
            fi
        }
    }

    if
    :: faulted ->
       for (i : 0 .. N - 1) { unsettled[i] = false }
       for (i : 0 .. NS - 1) { hold_until[i] = 0 }
    :: else -> skip
    fi;
    if
    :: !snap ->
       for (i : 0 .. N - 1) { s_status[i] = 0; s_due[i] = 0; s_token[i] = 0; s_owner[i] = 0 }
       for (i : 0 .. NT - 1) { s_live[i] = false; s_until[i] = 0; s_ids[i] = 0 }
       s_cursor = -1
    :: else -> skip
    fi;
    i = 0; e = 0; best = 0; found = false; bestkey = 0; nv = 0
}
