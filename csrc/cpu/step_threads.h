// Whether a training step runs on the thread team or on its caller alone,
// chosen by timing both, over and over.
//
// Why time it: what a second thread saves depends on the machine as much as on
// the model. A training step hands layer outputs, gradients and Adam's state
// between cores ~25 times; on a virtual machine whose host moves its vCPUs
// between cores, a cache line goes from one vCPU to the other and back in
// ~195 ns one moment and ~590 ns seconds later (~55 ns on other days).
// Measured on such a 2-vCPU EPYC, 784-200-200-50 at batch 20 on two threads
// always: 0.39-1.48x one thread's speed over 30 rounds; with these probes
// 0.99-1.48x (benchmarks/THREAD_PLACEMENT.md). A step's result never depends
// on its threads (parallel.h), so the choice may follow the clock from step
// to step without changing a bit.
//
// How: a probe runs rounds of 4 steps alone and on the team in the order
// A B B A (a steady drift in the machine's speed falls on both ways alike),
// timing all but the first step of each round (that one pays for moving the
// data between caches; so does the first step after the probe, not timed
// either). The faster way then runs until the next probe; the team must be
// kTeamGain faster, or the second core is not worth taking. Each probe that
// confirms the last choice doubles the time to the next one: on the team from
// 1,024 steps up to 8,192 (a probe costs its steps alone), alone from 256 up
// to 1,024 (the placement changes within seconds, and a probe's steps on the
// team are what finds it near again: at most ~1% of the steps when it stays
// far). A window of steps much slower than the probe measured (the machine
// changed) starts the next probe early, and the spacing starts again.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace pyvae {

// PYVAE_STEP_THREADS=team: every step that may share runs on the team,
// untimed (benchmarks/thread_placement.py measures what the probes save).
inline bool step_threads_always_team() {
    static const bool team = [] {
        const char* e = std::getenv("PYVAE_STEP_THREADS");
        return e != nullptr && std::strcmp(e, "team") == 0;
    }();
    return team;
}

class StepThreadChooser {
   public:
    static constexpr int kRoundSteps = 4;  // per probe round, the first not timed
    static constexpr int kRounds = 4;
    // Steps from a probe to the next: at first, and at most, by the way chosen.
    static constexpr int64_t kFirstSpacingTeam = 1024, kMaxSpacingTeam = 8192;
    static constexpr int64_t kFirstSpacingAlone = 256, kMaxSpacingAlone = 1024;
    static constexpr int kWindowSteps = 32;
    static constexpr double kSlowerWindow = 1.5;  // a window this much slower than probed: probe again
    static constexpr double kTeamGain = 0.95;     // the team's time at most this share of the caller's

    // Whether the next step runs on the team.
    bool team_next() const {
        if (!warm_) return true;  // the team's first job starts its helpers: not part of any timing
        if (probing_) return kTeamRound[step_ / kRoundSteps];
        return team_;
    }

    // The step just run (on the team or not, as team_next() said) took `seconds`.
    void record(double seconds) {
        if (!warm_) {
            warm_ = true;
            return;
        }
        if (probing_) {
            if (step_ % kRoundSteps != 0) probe_seconds_[kTeamRound[step_ / kRoundSteps]] += seconds;
            if (++step_ == kRounds * kRoundSteps) choose();
            return;
        }
        const bool first = steps_left_-- == spacing_;  // may move the data back: not timed
        if (!first) {
            window_seconds_ += seconds;
            if (++window_steps_ == kWindowSteps) {
                const bool slower = window_seconds_ > kSlowerWindow * kWindowSteps * expected_seconds_;
                window_seconds_ = 0;
                window_steps_ = 0;
                if (slower) {
                    changed_ = true;
                    return start_probe();
                }
            }
        }
        if (steps_left_ <= 0) start_probe();
    }

   private:
    static constexpr bool kTeamRound[kRounds] = {false, true, true, false};
    static constexpr int kTimedPerWay = kRounds / 2 * (kRoundSteps - 1);

    void choose() {
        const bool team = probe_seconds_[1] <= kTeamGain * probe_seconds_[0];
        const bool confirmed = chosen_before_ && team == team_ && !changed_;
        spacing_ = confirmed ? std::min(2 * spacing_, team ? kMaxSpacingTeam : kMaxSpacingAlone)
                             : (team ? kFirstSpacingTeam : kFirstSpacingAlone);
        team_ = team;
        chosen_before_ = true;
        changed_ = false;
        expected_seconds_ = probe_seconds_[team_] / kTimedPerWay;
        probing_ = false;
        steps_left_ = spacing_;
        window_seconds_ = 0;
        window_steps_ = 0;
    }

    void start_probe() {
        probing_ = true;
        step_ = 0;
        probe_seconds_[0] = probe_seconds_[1] = 0;
    }

    bool warm_ = false, probing_ = true, team_ = false, chosen_before_ = false, changed_ = false;
    int step_ = 0, window_steps_ = 0;
    int64_t spacing_ = 0, steps_left_ = 0;
    double probe_seconds_[2] = {0, 0};
    double expected_seconds_ = 0, window_seconds_ = 0;
};

}  // namespace pyvae
