/* How long a cache line takes to go from one CPU to another and back, in ns.
 *
 * benchmarks/compare.py builds and runs this before every measurement on more
 * than one CPU: on a virtual machine the host may put two vCPUs next to each
 * other (~50 ns here) or far apart (~330 ns), and moves them within seconds;
 * work that passes data between threads, a training step of every framework
 * measured, runs at a fraction of its speed in the second state.
 *
 * Usage: core_round_trip CPU_A CPU_B [ROUND_TRIPS]; prints the median over 5
 * repetitions, in ns per round trip.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_int turn;
static long round_trips;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *cpu) {
    pin(*(int *)cpu);
    for (long k = 0; k < round_trips; ++k) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 1) {
        }
        atomic_store_explicit(&turn, 0, memory_order_release);
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CPU_A CPU_B [ROUND_TRIPS]\n", argv[0]);
        return 2;
    }
    int cpu_a = atoi(argv[1]), cpu_b = atoi(argv[2]);
    round_trips = argc > 3 ? atol(argv[3]) : 20000;
    if (pin(cpu_a) != 0) {
        fprintf(stderr, "cannot run on CPU %d\n", cpu_a);
        return 1;
    }
    double ns[5];
    for (int r = 0; r < 5; ++r) {
        pthread_t other;
        atomic_store(&turn, 0);
        if (pthread_create(&other, NULL, answer, &cpu_b) != 0) return 1;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long k = 0; k < round_trips; ++k) {
            atomic_store_explicit(&turn, 1, memory_order_release);
            while (atomic_load_explicit(&turn, memory_order_acquire) != 0) {
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_join(other, NULL);
        ns[r] = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / round_trips;
    }
    qsort(ns, 5, sizeof ns[0], by_value);
    printf("%.0f\n", ns[2]);
    return 0;
}
