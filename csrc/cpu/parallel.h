// The core's thread team: helpers that join a piece of work when they are
// free, and never hold the caller back when they are not.
//
// Why not an OpenMP parallel region: every thread of an OpenMP team must reach
// the region's closing barrier, so the caller waits for a helper even when the
// helper has no work left or has not woken up yet. On a shared machine the
// helper may have lost its core, and a training step runs ~20 regions: waiting
// passively (sleeping) costs a wake-up per region (two threads barely beat one
// at small batches), spinning burns the core the late thread needs (two threads
// lose to one beside a busy process). Here the caller claims tasks like any
// helper and, at the end, waits only for tasks a helper has already started:
// work nobody picked up, the caller does itself. So a team is never much slower
// than the caller alone, whoever is late.
//
// Helpers spin for a short while after a job (a step's jobs follow each other
// within microseconds), then sleep on a condition variable: an idle process
// costs nothing. PYVAE_SPIN_US sets the spin (microseconds; default 100).
//
// Determinism: which thread runs a task never changes what it computes; the
// kernels cut their work into tasks by shape alone (see Blocks in matmul.h).
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <type_traits>
#include <thread>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(__CUDACC__)
#include <immintrin.h>
#define PYVAE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__) && !defined(__CUDACC__)
#define PYVAE_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define PYVAE_CPU_RELAX() ((void)0)
#endif

#ifdef __unix__
#include <pthread.h>
#include <sched.h>
#endif

namespace pyvae {

// CPUs this process may run on (its affinity mask), at least 1.
inline int available_cpus() {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1u, std::thread::hardware_concurrency());
}

class ThreadTeam {
   public:
    // The process-wide team. After fork() the child gets a fresh one (the
    // parent's helpers do not exist there).
    static ThreadTeam& get() {
        static std::atomic<ThreadTeam*> team{nullptr};
        static std::atomic<bool> atfork_set{false};
        if (!atfork_set.exchange(true)) {
#ifdef __unix__
            pthread_atfork(nullptr, nullptr, [] { forked() = true; });
#endif
        }
        ThreadTeam* t = team.load(std::memory_order_acquire);
        if (t == nullptr || forked()) {
            static std::mutex create;
            std::lock_guard<std::mutex> lock(create);
            t = team.load(std::memory_order_acquire);
            if (t == nullptr || forked()) {
                forked() = false;
                t = new ThreadTeam();  // never freed: helpers may sleep on it until exit
                team.store(t, std::memory_order_release);
            }
        }
        return *t;
    }

    // Runs task(k) for every k in [0, n_tasks) on the calling thread and up to
    // n_threads - 1 helpers; returns when all are done. Tasks must write
    // disjoint memory. A second caller while a job runs (another Python thread,
    // or a task that itself asks for the team) runs its tasks alone.
    template <class F>
    void run(int n_tasks, int n_threads, F&& task) {
        if (n_tasks <= 0) return;
        const int helpers = std::min(n_threads, n_tasks) - 1;
        if (helpers <= 0 || n_tasks > kMaxTasks || busy_.exchange(true, std::memory_order_acquire)) {
            for (int k = 0; k < n_tasks; ++k) task(k);
            return;
        }
        ensure_helpers(helpers);
        using Fn = std::remove_reference_t<F>;
        void (*fn)(void*, int) = [](void* ctx, int k) { (*static_cast<Fn*>(ctx))(k); };
        void* ctx = const_cast<void*>(static_cast<const void*>(&task));
        fn_.store(fn, std::memory_order_relaxed);
        ctx_.store(ctx, std::memory_order_relaxed);
        allowed_.store(helpers, std::memory_order_relaxed);
        done_.store(0, std::memory_order_relaxed);
        const uint64_t gen = ((state_.load(std::memory_order_relaxed) >> 32) + 1) & 0xFFFFFFFFu;
        state_.store(gen << 32 | uint64_t(n_tasks) << 16, std::memory_order_seq_cst);  // publish
        ++jobs_;
        const bool woke = sleepers_.load(std::memory_order_seq_cst) > 0 && jobs_ >= dormant_until_;
        if (woke) {
            std::lock_guard<std::mutex> lock(mutex_);
            wake_.notify_all();
        }
        const int by_caller = work(gen, fn, ctx);
        // What is left are tasks helpers started: wait for them, politely.
        for (int spins = 0; done_.load(std::memory_order_acquire) < n_tasks; ++spins) {
            if (spins < 4096) PYVAE_CPU_RELAX();
            else std::this_thread::yield();
        }
        note_help(woke, by_caller < n_tasks);
        busy_.store(false, std::memory_order_release);
    }

    int n_helpers() const { return int(helpers_.size()); }

   private:
    // state_: generation (32 bits) | tasks in the job (16) | next task to claim (16).
    // Claiming a task is a compare-and-swap that also checks the generation, so
    // a helper that wakes late can never take a task of a later job.
    static constexpr int kMaxTasks = 0xFFFF;

    ThreadTeam() {
        const char* env = std::getenv("PYVAE_SPIN_US");
        spin_ = std::chrono::microseconds(env ? std::atol(env) : 100);
    }

    static bool& forked() {
        static bool flag = false;
        return flag;
    }

    // Claims and runs tasks of job `gen` until none is left; returns how many it ran.
    int work(uint64_t gen, void (*fn)(void*, int), void* ctx) {
        int ran = 0;
        uint64_t s = state_.load(std::memory_order_acquire);
        while (true) {
            const uint64_t next = s & 0xFFFF, n = (s >> 16) & 0xFFFF;
            if ((s >> 32) != gen || next >= n) return ran;
            if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire))
                continue;
            fn(ctx, int(next));
            ++ran;
            done_.fetch_add(1, std::memory_order_release);
            s = state_.load(std::memory_order_acquire);
        }
    }

    // Waking a sleeping helper costs a system call, and on a busy machine the
    // helper may only get a core after the caller has done everything. After
    // kMisses wake-ups in a row that brought no help, stop waking helpers for
    // 2, 4, 8, ... up to 1024 jobs (a helper that is awake still joins); any
    // help resets that. Caller-side state: one caller at a time (busy_).
    void note_help(bool woke, bool helped) {
        constexpr int kMisses = 8;
        if (helped) {
            misses_ = 0;
            backoff_ = 0;
        } else if (woke && ++misses_ >= kMisses) {
            misses_ = 0;
            backoff_ = std::min(backoff_ + 1, 10);
            dormant_until_ = jobs_ + (int64_t(1) << backoff_);
        }
    }

    void helper_loop(int index) {
        uint64_t seen = state_.load(std::memory_order_acquire) >> 32;
        while (true) {
            // Spin a while for the next job, then sleep until one comes.
            uint64_t s = state_.load(std::memory_order_acquire);
            const auto until = std::chrono::steady_clock::now() + spin_;
            for (int i = 0; (s >> 32) == seen; ++i) {
                PYVAE_CPU_RELAX();
                // Now and then let a thread waiting for this core run: on a busy
                // machine it may be the caller, whose work is what we wait for.
                if ((i & 255) == 255) std::this_thread::yield();
                if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) {
                    std::unique_lock<std::mutex> lock(mutex_);
                    sleepers_.fetch_add(1, std::memory_order_seq_cst);
                    while ((state_.load(std::memory_order_seq_cst) >> 32) == seen) wake_.wait(lock);
                    sleepers_.fetch_sub(1, std::memory_order_relaxed);
                }
                s = state_.load(std::memory_order_acquire);
            }
            seen = s >> 32;
            // The job's fields belong to `seen` as long as a claim in work()
            // succeeds (they change only after every task of it is done).
            void (*fn)(void*, int) = fn_.load(std::memory_order_relaxed);
            void* ctx = ctx_.load(std::memory_order_relaxed);
            if (index < allowed_.load(std::memory_order_relaxed)) work(seen, fn, ctx);
        }
    }

    void ensure_helpers(int n) {
        if (int(helpers_.size()) >= n) return;
        std::lock_guard<std::mutex> lock(grow_);
        while (int(helpers_.size()) < n) {
            const int index = int(helpers_.size());
            helpers_.emplace_back([this, index] { helper_loop(index); });
            helpers_.back().detach();
        }
    }

    std::atomic<uint64_t> state_{0};
    std::atomic<int> done_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> busy_{false};
    // The job: written by the caller before it publishes state_, read by helpers after.
    std::atomic<void (*)(void*, int)> fn_{nullptr};
    std::atomic<void*> ctx_{nullptr};
    std::atomic<int> allowed_{0};
    int64_t jobs_ = 0, dormant_until_ = 0;
    int misses_ = 0, backoff_ = 0;
    std::chrono::microseconds spin_;
    std::mutex mutex_, grow_;
    std::condition_variable wake_;
    std::vector<std::thread> helpers_;
};

// The most threads a pass started on this thread may use, for the lifetime of
// a ThreadCap: a piece of work made of many passes too small to share each (a
// training step of a small model, see Model::train_epoch) runs on its caller
// alone. The thread count never changes a result, only the time.
inline int& thread_cap() {
    static thread_local int cap = std::numeric_limits<int>::max();
    return cap;
}
class ThreadCap {
   public:
    explicit ThreadCap(int cap) : saved_(thread_cap()) { thread_cap() = std::min(saved_, cap); }
    ~ThreadCap() { thread_cap() = saved_; }
    ThreadCap(const ThreadCap&) = delete;
    ThreadCap& operator=(const ThreadCap&) = delete;

   private:
    int saved_;
};

// Rows per task for a loop over n independent rows: at most 8 tasks, so a helper
// that arrives late still finds work, and a task stays large enough to be worth
// a claim. A function of n only (the results never depend on it anyway: each
// row is computed on its own).
inline int64_t chunk_for(int64_t n) { return std::max<int64_t>(1, (n + 7) / 8); }

// Runs body(lo, hi) over [0, n) in chunks of `chunk` (fixed by the caller from
// the shape, never from the thread count) on up to n_threads threads when
// `parallel` (the work is worth waking helpers for).
template <class F>
inline void parallel_for(int64_t n, int64_t chunk, int n_threads, bool parallel, F&& body) {
    if (n <= 0) return;
    chunk = std::max<int64_t>(1, chunk);
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    n_threads = std::min(n_threads, thread_cap());
    if (!parallel || n_threads <= 1 || n_chunks <= 1) {
        body(int64_t(0), n);
        return;
    }
    ThreadTeam::get().run(int(n_chunks), n_threads, [&](int k) {
        const int64_t lo = int64_t(k) * chunk;
        body(lo, std::min(n, lo + chunk));
    });
}

}  // namespace pyvae
