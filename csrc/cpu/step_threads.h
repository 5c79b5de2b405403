// Whether a training step runs on the thread team or on its caller alone,
// chosen by timing both, over and over.
//
// Why time it: what a second thread saves depends on the machine as much as on
// the model. A training step hands layer outputs, gradients and Adam's state
// between cores ~25 times; on a virtual machine whose host moves its vCPUs
// between cores, a cache line crosses from one vCPU to the other in ~50 ns
// (round trip) one moment and ~330 ns seconds later. Measured on such a
// 2-vCPU EPYC, 784-200-200-50 at batch 20: 1.5x one thread's speed on two in
// the first state, 0.45x in the second, changing within a process. A step's
// result never depends on its threads (parallel.h), so the choice may follow
// the clock from step to step without changing a bit.
//
// How: a probe runs rounds of steps alone and on the team in the order
// A B B A A B B A (a drift in the machine's speed falls on both ways alike),
// timing all but the first step of each round (that one pays for moving the
// data between caches; so does the first step after the probe, not timed
// either). The faster way then runs for kExploitSteps steps; the
// team must be kTeamGain faster, or the second core is not worth taking. A
// window of steps much slower than the probe measured (the machine changed)
// starts the next probe early.
#pragma once
#include <cstdint>

namespace pyvae {

class StepThreadChooser {
   public:
    static constexpr int kRoundSteps = 5;  // per probe round, the first not timed
    static constexpr int kRounds = 8;
    static constexpr int64_t kExploitSteps = 1024;
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
            const int round = step_ / kRoundSteps;
            if (step_ % kRoundSteps != 0) probe_seconds_[kTeamRound[round]] += seconds;
            if (++step_ == kRounds * kRoundSteps) choose();
            return;
        }
        if (exploit_left_-- == kExploitSteps) {
            // The first step after the probe may move the data back: not timed.
            if (exploit_left_ <= 0) start_probe();
            return;
        }
        window_seconds_ += seconds;
        if (++window_steps_ == kWindowSteps) {
            const bool slower = window_seconds_ > kSlowerWindow * kWindowSteps * expected_seconds_;
            window_seconds_ = 0;
            window_steps_ = 0;
            if (slower) return start_probe();
        }
        if (exploit_left_ <= 0) start_probe();
    }

    // The way the last probe chose and the seconds per step it measured each way.
    bool chose_team() const { return team_; }
    double probed_seconds(bool team) const { return last_probe_[team] / kTimedPerWay; }

   private:
    static constexpr bool kTeamRound[kRounds] = {false, true, true, false, false, true, true, false};
    static constexpr int kTimedPerWay = kRounds / 2 * (kRoundSteps - 1);

    void choose() {
        last_probe_[0] = probe_seconds_[0];
        last_probe_[1] = probe_seconds_[1];
        team_ = probe_seconds_[1] <= kTeamGain * probe_seconds_[0];
        expected_seconds_ = probe_seconds_[team_] / kTimedPerWay;
        probing_ = false;
        exploit_left_ = kExploitSteps;
        window_seconds_ = 0;
        window_steps_ = 0;
    }

    void start_probe() {
        probing_ = true;
        step_ = 0;
        probe_seconds_[0] = probe_seconds_[1] = 0;
    }

    bool warm_ = false, probing_ = true, team_ = false;
    int step_ = 0, window_steps_ = 0;
    int64_t exploit_left_ = 0;
    double probe_seconds_[2] = {0, 0}, last_probe_[2] = {0, 0};
    double expected_seconds_ = 0, window_seconds_ = 0;
};

}  // namespace pyvae
