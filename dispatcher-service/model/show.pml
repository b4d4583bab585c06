/*
 * What a counterexample trail prints at each step (`spin -t queue.pml`);
 * printf does nothing while pan searches.
 */
#define show(what) \
    printf("t=%d ", now); printf(what); printf(" | cursor=%d |", cursor); \
    for (i : 0 .. N - 1) { printf(" d%d:st=%d,due=%d,tok=%d,v=%d", i, status[i], due[i], token[i], version[i]) } \
    printf(" | claims:"); \
    for (i : 1 .. NT - 1) { if :: live[i] -> printf(" %d{ids=%d,until=%d}", i, ids[i], until[i]) :: else -> skip fi } \
    printf(" | holds:"); \
    for (i : 0 .. NS - 1) { if :: hold_tok[i] != 0 -> printf(" r%d/d%d{tok=%d,was=%d,v=%d,sent=%d}", i / N, i % N, hold_tok[i], hold_was[i], hold_ver[i], attempted[i]) :: else -> skip fi } \
    printf("\n"); i = 0
