/* consumer.c — links an installed darn and runs one tiny RMSNorm forward on the CPU backend.
 * Exit status 0 when the version matches the header and y = x * rstd * w is within 1e-5 of fp64. */
#include <darn/darn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    if (darn_version() != DARN_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header version %d, library version %d\n", DARN_VERSION_NUMBER, darn_version());
        return 1;
    }
    enum { M = 2, N = 4 };
    const float x[M * N] = {1.0f, -2.0f, 3.0f, -4.0f, 0.5f, 0.25f, -0.125f, 2.0f};
    const float w[N] = {1.0f, 0.5f, 2.0f, -1.0f};
    float y[M * N], rstd[M];

    darn_desc d;
    darn_desc_init(&d, DARN_RMSNORM, M, N, DARN_F32);
    darn_fwd_tensors t = {0};
    t.x = x;
    t.weight = w;
    t.out = y;
    t.rstd = rstd;
    size_t ws = 0;
    darn_status st = darn_fwd_workspace_size(&d, DARN_BACKEND_CPU, &ws);
    if (st != DARN_OK) {
        fprintf(stderr, "consumer: workspace size: %s: %s\n", darn_status_string(st), darn_last_error());
        return 1;
    }
    void *work = ws ? malloc(ws) : NULL;
    if (ws && !work) return 1;
    st = darn_fwd(&d, &t, work, ws, DARN_BACKEND_CPU, NULL);
    free(work);
    if (st != DARN_OK) {
        fprintf(stderr, "consumer: darn_fwd: %s: %s\n", darn_status_string(st), darn_last_error());
        return 1;
    }
    for (int r = 0; r < M; r++) {
        double ss = 0.0;
        for (int c = 0; c < N; c++) ss += (double)x[r * N + c] * x[r * N + c];
        const double rs = 1.0 / sqrt(ss / N + (double)d.eps);
        for (int c = 0; c < N; c++) {
            const double want = x[r * N + c] * rs * w[c];
            if (fabs(y[r * N + c] - want) > 1e-5 * (1.0 + fabs(want))) {
                fprintf(stderr, "consumer: y[%d,%d] = %.9g, want %.9g\n", r, c, y[r * N + c], want);
                return 1;
            }
        }
    }
    printf("consumer: darn %s (contract %d): RMSNorm forward OK\n", darn_version_string(), darn_contract_version());
    return 0;
}
