/* insnmark: a QEMU TCG plugin (linux-user) that counts the guest instructions
 * executed between markers, for `camtrapd bench --insn-markers`
 * (src/bench/insn.rs) under scripts/arm-cost.sh.
 *
 * A marker is the system call 0xCA77 (no kernel assigns it; the guest gets
 * ENOSYS) with two arguments: a region id and 0 (open) or 1 (close). For each
 * id the plugin adds the instructions executed between open and close, and
 * counts the closes. At exit it prints on stderr (with -d plugin):
 *   insns: N              every guest instruction of the run
 *   mark ID HITS INSNS    per region: closes, and instructions inside them
 *
 * Counting is per translation block, added inline when the block starts, as
 * in ../shared/tools/qemu-insn/insncount.c (from which this is derived): a
 * block ends at a system call, so a marker's count is exact to the
 * instruction. The counter is not atomic: mark single-threaded work.
 *
 * Build: cc -O2 -shared -fPIC -fvisibility=hidden -o libinsnmark.so insnmark.c
 * Written against QEMU's plugin API version 1 (QEMU 7.2, Debian 12); only the
 * entry points used here are declared. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t plugin_id;
typedef struct {
    const char *target_name;
    struct { int min, cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus, max_vcpus; } system; };
} plugin_info;
struct qemu_plugin_tb;
enum plugin_op { INLINE_ADD_U64 = 0 };
typedef void (*syscall_cb)(plugin_id, unsigned int, int64_t, uint64_t, uint64_t, uint64_t,
                           uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id, void (*)(plugin_id, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum plugin_op, void *, uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_vcpu_syscall_cb(plugin_id, syscall_cb);
void qemu_plugin_register_atexit_cb(plugin_id, void (*)(plugin_id, void *), void *);
void qemu_plugin_outs(const char *);

EXPORT int qemu_plugin_version = 1;

#define MARK_SYSCALL 0xCA77
#define MAX_ID 8192

static uint64_t insns;
static uint64_t opened[MAX_ID], total[MAX_ID], hits[MAX_ID];

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &insns, qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(plugin_id id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    if (num != MARK_SYSCALL || a1 >= MAX_ID)
        return;
    if (a2 == 0) {
        opened[a1] = insns;
    } else {
        total[a1] += insns - opened[a1];
        hits[a1] += 1;
    }
}

static void on_exit(plugin_id id, void *p)
{
    (void)id; (void)p;
    char line[96];
    snprintf(line, sizeof line, "insns: %" PRIu64 "\n", insns);
    qemu_plugin_outs(line);
    for (size_t i = 0; i < MAX_ID; i++) {
        if (hits[i] == 0)
            continue;
        snprintf(line, sizeof line, "mark %zu %" PRIu64 " %" PRIu64 "\n", i, hits[i], total[i]);
        qemu_plugin_outs(line);
    }
}

EXPORT int qemu_plugin_install(plugin_id id, const plugin_info *info, int argc, char **argv)
{
    (void)info; (void)argc; (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
