/* device_none.c — darn/device.h in a library built without a GPU backend: every call says so. */
#include "darn/device.h"
#include "validate.h"

#ifndef DARN_HAVE_GPU
static darn_status none(const char *fn)
{
    return darn_fail(DARN_ERR_BACKEND_UNAVAILABLE, "%s: this library was built with DARN_GPU=none", fn);
}

darn_status darn_device_malloc(void **ptr, size_t bytes) { (void)ptr; (void)bytes; return none("darn_device_malloc"); }
darn_status darn_device_free(void *ptr) { (void)ptr; return none("darn_device_free"); }
darn_status darn_device_memcpy(void *dst, const void *src, size_t bytes, darn_copy_kind kind)
{
    (void)dst; (void)src; (void)bytes; (void)kind;
    return none("darn_device_memcpy");
}
darn_status darn_device_memset(void *ptr, int byte, size_t bytes)
{
    (void)ptr; (void)byte; (void)bytes;
    return none("darn_device_memset");
}
darn_status darn_device_synchronize(void) { return none("darn_device_synchronize"); }
darn_status darn_device_info(char *name, size_t name_bytes, size_t *total_mem)
{
    (void)name; (void)name_bytes; (void)total_mem;
    return none("darn_device_info");
}
darn_status darn_event_create(darn_event **ev) { (void)ev; return none("darn_event_create"); }
darn_status darn_event_destroy(darn_event *ev) { (void)ev; return none("darn_event_destroy"); }
darn_status darn_event_record(darn_event *ev, void *stream) { (void)ev; (void)stream; return none("darn_event_record"); }
darn_status darn_event_elapsed_ms(float *ms, darn_event *start, darn_event *stop)
{
    (void)ms; (void)start; (void)stop;
    return none("darn_event_elapsed_ms");
}
darn_status darn_device_check_conversions(darn_conversion_report *r)
{
    (void)r;
    return none("darn_device_check_conversions");
}
#else
typedef int darn_device_none_unused; /* ISO C forbids an empty translation unit */
#endif /* !DARN_HAVE_GPU */
