/* libFuzzer target: the configuration file (config.c on libconfig). Any
 * bytes must load or be refused with a message, never crash or leak. The
 * input is written to a temporary file, since the loader reads a path. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zw/config.h"
#include "zw/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    char errstr[1024];
    zw_config_t *cfg;
    FILE *f;

    if (!path[0]) {
        snprintf(path, sizeof(path), "/tmp/zw-fuzz-config-%ld.cfg", (long)getpid());
        zw_log_setup(ZW_LOG_ERROR, ZW_LOG_FORMAT_JSON, NULL);
    }
    f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cfg = zw_config_load(path, errstr, sizeof(errstr));
    if (!cfg && !errstr[0])
        __builtin_trap(); /* a refusal always says why */
    zw_config_destroy(cfg);
    return 0;
}
