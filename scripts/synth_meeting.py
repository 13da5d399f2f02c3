#!/usr/bin/env python3
"""Synthetic meeting generator with exact speaker-diarization reference labels.

Every speaker is a distinct espeak-ng voice (language/accent, voice variant,
pitch, speaking rate and a "tape speed" factor that scales pitch and formants
together, i.e. a different vocal-tract length).  Sentences come from a built-in
list of meeting-like English sentences.  Each sentence is synthesised by
espeak-ng, converted by sox to 16 kHz mono float, trimmed of leading/trailing
silence with a frame-energy threshold, level-normalised, gain-varied and placed
on the timeline.  Because the program places every trimmed clip itself, the
RTTM it writes is exact: one span per sentence (trimmed clip extent), then
same-speaker spans that touch or overlap are merged.  All clip positions and
lengths are on a 1 ms grid, so three RTTM decimals are exact.

Timeline model
  * Turns: one speaker says 1-4 sentences separated by 0.15-0.6 s pauses
    (the pauses are silence and are NOT labelled as speech).
  * Between turns: a random gap (mostly 0.15-0.9 s, sometimes up to --max-gap s).
  * Overlap (--overlap FRAC): FRAC of the turn changes are interruptions (the
    next turn starts 0.3-3 s before the current one ends; the interrupted
    speaker finishes the sentence), and listeners' backchannels ("yeah",
    "right", "mm-hmm", ...) are added inside sentences at the rate that makes
    about FRAC of all utterances (sentences + backchannels) start while someone
    else is talking.  Draws are stratified in blocks of 20, so even a 2-minute
    file is close to the requested rate.  The measured overlap is printed and
    stored in NAME.json.
  * Every speaker talks once in the first N turns; afterwards the next speaker
    is drawn by per-speaker weights that favour those who have been quiet.
  * --overlap 0 gives no overlapped speech at all.
  * Optional slight reverb (--reverb, sox "reverb") on the speech mix; labels
    stay the dry spans (reverb tails are not speech).
  * Optional additive noise (--snr DB, --noise white|pink|babble|mix) scaled
    against the RMS of the speech regions; babble is an 8-talker mix of other
    synthetic voices and is not labelled.

Outputs in --out: NAME.wav (16 kHz, mono, 16-bit PCM), NAME.rttm (file id
NAME, channel 1, speakers spk0..spkN-1) and NAME.json (arguments, voice
profiles, tool versions and the measured statistics).  The run prints a
summary measured back from the written WAV/RTTM: duration, speech and
overlap seconds, per-speaker speech seconds, RMS and median F0, and the noise
floor.  `--verify WAV RTTM` prints the same summary for existing files.
The exit status is 1 if a consistency check fails (labels vs. placed clips,
unmerged same-speaker lines, a speaker who never talks, or - for a clean file -
any non-zero sample outside the labels).

Output is deterministic for a given seed and set of arguments (espeak-ng and
sox are deterministic; --jobs does not change the result), given the same
espeak-ng/sox versions.

Requirements: python3 with numpy; Debian packages espeak-ng and sox
(`apt-get install -y espeak-ng sox`).

Long files for benchmarks: generation runs at roughly 150x real time on one
core (measured: a 60-minute meeting in ~20 s with <1 GB RAM; a 240-minute one
with noise and reverb in ~2 minutes with ~3 GB RAM; the WAV is ~115 MB per
hour).  --jobs 2 runs two espeak-ng/sox pipelines at once (same output).
Generate such files on demand into an ignored directory, e.g.
    python3 scripts/synth_meeting.py --out bench-data/synth --name synth-4spk-60min \\
        --speakers 4 --minutes 60 --overlap 0.1 --snr 15 --seed 1
(/bench-data is in .gitignore; do not commit long files).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SR = 16000
MS = SR // 1000  # samples per millisecond: every position/length is a multiple of this

# --------------------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------------------

SENTENCES = [
    "Okay, let's get started, we have a lot to cover today.",
    "Can everyone hear me all right?",
    "I think the first item on the agenda is the quarterly budget review.",
    "Before we dive in, I wanted to quickly recap what we decided last week.",
    "We agreed to push the release by two weeks to fix the remaining bugs.",
    "Has anyone had a chance to look at the new design mockups?",
    "I went through them yesterday and I have a few comments.",
    "Overall they look good, but the navigation feels a bit cluttered.",
    "Maybe we could move the settings menu into the profile page.",
    "That's a fair point, I'll talk to the design team about it.",
    "What's the status on the database migration?",
    "We finished the staging environment on Tuesday and it went smoothly.",
    "Production is scheduled for next Thursday night, after business hours.",
    "Do we have a rollback plan in case something goes wrong?",
    "Yes, we tested the rollback twice and it takes about twenty minutes.",
    "I'm a little worried about the customer data in the old format.",
    "The conversion script handles that, we checked a full copy last month.",
    "Good, let's make sure support knows about the maintenance window.",
    "I'll send an email to the support leads this afternoon.",
    "Moving on, the marketing team wants to present their campaign results.",
    "The spring campaign reached about forty thousand new users.",
    "Conversion was lower than we hoped, around two point five percent.",
    "Do we know why the conversion rate dropped compared to last year?",
    "Our best guess is that the landing page was too slow on mobile.",
    "We measured load times of over six seconds on older phones.",
    "That's way too slow, we should fix that before the next campaign.",
    "I can ask the front end team to profile the page this sprint.",
    "Let's also run an A B test with a simpler version of the page.",
    "How much budget do we have left for the rest of the quarter?",
    "Roughly sixty percent, but a big part of it is already committed.",
    "We need to decide whether to hire a contractor or wait until July.",
    "Honestly, I would rather wait, the team is stretched but managing.",
    "I disagree, we keep saying that and the backlog keeps growing.",
    "Can we look at the numbers before we make a decision?",
    "Sure, I'll put together a short summary by Friday.",
    "Another thing, the client in Munich asked for a demo next month.",
    "Which features do they want to see in the demo?",
    "Mainly the reporting dashboard and the export to spreadsheet.",
    "The export is still in beta, I'm not sure it's ready to show.",
    "We could show it with a small sample data set instead.",
    "That works, as long as we are clear that it's a preview.",
    "Who is going to run the demo on our side?",
    "I can do it, but I'll need someone from engineering on the call.",
    "I'll join, just send me the invite once the date is fixed.",
    "Let's talk about hiring for a minute.",
    "We interviewed three candidates for the data analyst role.",
    "The second candidate was really strong on statistics.",
    "She also had a lot of experience with customer research.",
    "I agree, I'd be happy to make her an offer.",
    "What about the salary range, is it within the approved budget?",
    "It's at the upper end, but still inside the range.",
    "Then I don't see a problem, let's go ahead with the offer.",
    "On the infrastructure side, our cloud costs went up again.",
    "Most of the increase comes from storage and data transfer.",
    "Could we archive the old logs to a cheaper storage tier?",
    "We could, but some teams still query those logs every week.",
    "Then let's ask them which logs they actually need.",
    "I'll create a ticket and tag the team leads.",
    "Is there anything blocking the mobile release?",
    "Just the app store review, which usually takes two or three days.",
    "We also need updated screenshots for the store listing.",
    "I thought those were done already, weren't they?",
    "Only for the phone version, the tablet ones are still missing.",
    "Okay, that shouldn't take long, I'll handle it tomorrow.",
    "One more thing about security, the annual audit starts in May.",
    "Please make sure your access reviews are completed before then.",
    "How long does the audit usually take?",
    "About three weeks, with a couple of interviews per team.",
    "Let's schedule a short prep session the week before.",
    "Sounds good to me.",
    "I'm not sure I follow, could you explain that again?",
    "Sorry, I think you're on mute.",
    "Can you share your screen so we can all see the chart?",
    "The blue line is this year and the grey line is last year.",
    "So we are basically flat, except for the peak in March.",
    "The peak was caused by the trade fair, it's a one time effect.",
    "We are running a bit over time, so let's wrap up.",
    "To summarise, we have three action items for next week.",
    "I'll write up the notes and share them after the call.",
    "Thanks everyone, talk to you on Monday.",
    "Let me think about that and get back to you.",
    "That's a good question, I don't have the numbers in front of me.",
    "I would keep the scope small and ship something in two weeks.",
    "If we do that, we have to cut the offline mode from this release.",
]

BACKCHANNELS = [
    "Yeah.", "Right.", "Mm-hmm.", "Okay.", "Exactly.", "Sure.", "I see.",
    "Uh-huh.", "Yes.", "True.", "Got it.", "Oh, really?", "Totally.",
    "Yeah, yeah.", "Right, right.", "Good point.", "Makes sense.", "Hmm.",
]

INTERRUPT_OPENERS = [
    "Sorry, can I jump in here?",
    "Wait, hold on a second.",
    "Actually, I don't think that's right.",
    "Sorry to interrupt, but",
    "Can I just add something?",
    "No, no, that's not what I meant.",
    "Just a quick question.",
    "Hang on.",
]

# --------------------------------------------------------------------------------------
# Voices
# --------------------------------------------------------------------------------------
# voice: espeak-ng "-v" (language/accent + variant); pitch: espeak "-p" 0..99 (base
# pitch inside the variant's range); wpm: espeak "-s"; tape: sox "speed" factor applied
# after synthesis (>1 shifts pitch AND formants up and speaks faster, like a shorter
# vocal tract; <1 the opposite).  The DISTINCT list is ordered so that any prefix is a
# set of clearly different voices alternating male/female.  TWINS are deliberately
# similar to the DISTINCT voice named in "twin_of" (same gender, accent, close pitch,
# rate and tape factor, different variant): use them via --similar K.

DISTINCT = [
    dict(name="adam", gender="M", voice="en-us+m3", pitch=35, wpm=165, tape=0.94),
    dict(name="beth", gender="F", voice="en+f2", pitch=55, wpm=150, tape=1.03),
    dict(name="colin", gender="M", voice="en-gb-scotland+m1", pitch=62, wpm=178, tape=1.04),
    dict(name="dora", gender="F", voice="en-us+f4", pitch=70, wpm=182, tape=1.08),
    dict(name="edgar", gender="M", voice="en-gb-x-rp+klatt2", pitch=45, wpm=145, tape=0.97),
    dict(name="fiona", gender="F", voice="en-029+f5", pitch=35, wpm=160, tape=0.97),
    dict(name="gary", gender="M", voice="en-us-nyc+m7", pitch=20, wpm=192, tape=0.92),
    dict(name="hana", gender="F", voice="en-gb-x-gbcwmd+steph", pitch=50, wpm=170, tape=1.05),
    dict(name="ivan", gender="M", voice="en-gb-x-gbclan+m2", pitch=50, wpm=158, tape=1.00),
    dict(name="jane", gender="F", voice="en-us+f3", pitch=45, wpm=140, tape=1.00),
]

TWINS = [
    dict(name="adam2", gender="M", voice="en-us+m6", pitch=30, wpm=170, tape=0.98, twin_of="adam"),
    dict(name="beth2", gender="F", voice="en+f5", pitch=45, wpm=158, tape=1.00, twin_of="beth"),
    dict(name="colin2", gender="M", voice="en-gb-scotland+m4", pitch=58, wpm=172, tape=1.02,
         twin_of="colin"),
]

ALL_PROFILES = {p["name"]: p for p in DISTINCT + TWINS}


def pick_profiles(n, similar, names=None):
    if names:
        out = []
        for nm in names:
            if nm not in ALL_PROFILES:
                raise SystemExit(f"unknown voice {nm!r}; see --list-voices")
            out.append(ALL_PROFILES[nm])
        if len(out) != n:
            raise SystemExit(f"--voices lists {len(out)} voices but --speakers is {n}")
        return out
    if similar < 0 or similar > len(TWINS) or similar >= n:
        raise SystemExit(f"--similar must be in 0..{min(len(TWINS), n - 1)}")
    base = n - similar
    if base > len(DISTINCT):
        raise SystemExit(f"at most {len(DISTINCT) + similar} speakers with --similar {similar}")
    out = list(DISTINCT[:base])
    for tw in TWINS[:similar]:
        if tw["twin_of"] not in [p["name"] for p in out]:
            raise SystemExit(f"twin {tw['name']} needs {tw['twin_of']} among the speakers")
        out.append(tw)
    return out


# --------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------

def synth_raw(profile, text, dpitch=0, dwpm=0):
    """espeak-ng -> sox (tape speed, resample to 16 kHz) -> float32 mono array."""
    pitch = int(min(99, max(0, profile["pitch"] + dpitch)))
    wpm = int(max(80, profile["wpm"] + dwpm))
    e = subprocess.run(
        ["espeak-ng", "-v", profile["voice"], "-p", str(pitch), "-s", str(wpm), "--stdout", text],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    s = subprocess.run(
        ["sox", "-V1", "-t", "wav", "-", "-t", "f32", "-c", "1", "-",
         "speed", "%.4f" % profile["tape"], "rate", "-v", str(SR)],
        input=e.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return np.frombuffer(s.stdout, dtype="<f4").astype(np.float32)


FRAME = 5 * MS  # 5 ms frames for trimming (multiple of MS => ms-grid lengths)
TRIM_DB = 40.0  # frames more than this below the loudest frame count as silence
TARGET_RMS_DB = -20.0  # active-speech RMS each clip is normalised to (before gains)


def trim_normalise(x):
    n = len(x) // FRAME
    if n == 0:
        return np.zeros(0, np.float32)
    e = (x[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2).mean(axis=1)
    thr = max(e.max() * 10 ** (-TRIM_DB / 10), 1e-10)
    act = np.nonzero(e > thr)[0]
    if len(act) == 0:
        return np.zeros(0, np.float32)
    y = x[act[0] * FRAME:(act[-1] + 1) * FRAME].copy()
    rms = math.sqrt(e[act].mean())
    y *= 10 ** (TARGET_RMS_DB / 20) / rms
    f = 2 * MS  # 2 ms raised-cosine fades against clicks at the cut points
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, math.pi, f))).astype(np.float32)
    y[:f] *= ramp
    y[-f:] *= ramp[::-1]
    return y


def synth_clip(req):
    profile, text, dpitch, dwpm = req
    return trim_normalise(synth_raw(profile, text, dpitch, dwpm))


# --------------------------------------------------------------------------------------
# Planning (all randomness is drawn here, independent of clip durations)
# --------------------------------------------------------------------------------------

def ms(sec):
    return int(round(sec * 1000))


N_SENT = [1, 2, 3, 4]  # sentences per turn
N_SENT_P = [0.45, 0.30, 0.17, 0.08]


class Planner:
    """Yields turns; uses only its own RNG so that planning never depends on audio."""

    def __init__(self, rng, n_spk, overlap, max_gap, gain_var):
        self.rng = rng
        self.n = n_spk
        self.overlap = overlap
        self.max_gap = max_gap
        self.gain_var = gain_var
        self.weights = rng.uniform(0.6, 1.4, n_spk)
        self.spk_gain_db = rng.uniform(-4.0, 0.0, n_spk)
        self.decks = [[] for _ in range(n_spk)]
        self.intro = [int(i) for i in rng.permutation(n_spk)]
        self.cur = -1
        self.since = np.zeros(n_spk)
        self.bags = {}
        # Interruptions start FRAC of the turns inside the previous turn.  Backchannels are
        # added to sentences at the rate that makes the expected share of utterances
        # (sentences + backchannels) starting inside other speech equal to FRAC:
        #   (FRAC*T + q*S) / (S + q*S) = FRAC  with  S/T = mean sentences per turn.
        m = float(np.dot(N_SENT, N_SENT_P))
        self.bc_rate = min(1.0, overlap * (1 - 1 / m) / (1 - overlap)) if overlap < 1 else 1.0

    def _sentence(self, spk):
        if not self.decks[spk]:
            self.decks[spk] = list(self.rng.permutation(len(SENTENCES)))
        return SENTENCES[self.decks[spk].pop()]

    def _jitter(self):
        return int(self.rng.integers(-4, 5)), int(self.rng.integers(-10, 11))

    def _gain(self, spk):
        g = self.spk_gain_db[spk]
        if self.gain_var > 0:
            g += float(np.clip(self.rng.normal(0, self.gain_var / 2), -self.gain_var, self.gain_var))
        return g

    def _other(self, exclude):
        cand = [i for i in range(self.n) if i != exclude]
        w = self.weights[cand] / self.weights[cand].sum()
        return int(self.rng.choice(cand, p=w))

    def _next_speaker(self):
        """Everybody speaks once (random order) first; then weighted, favouring the quiet."""
        if self.intro:
            return self.intro.pop()
        if self.n == 1:
            return 0
        cand = [i for i in range(self.n) if i != self.cur]
        w = np.array([self.weights[i] * (1 + 0.5 * self.since[i]) for i in cand])
        return int(self.rng.choice(cand, p=w / w.sum()))

    def _bag(self, name, rate, size=20):
        """Stratified Bernoulli draws: each block of `size` draws has round(size*rate) hits,
        so short files get close to the requested rate."""
        bag = self.bags.setdefault(name, [])
        if not bag:
            k = int(round(size * rate))
            bag.extend(self.rng.permutation([1] * k + [0] * (size - k)).tolist())
        return bool(bag.pop())

    def next_turn(self):
        r = self.rng
        first = self.cur < 0
        spk = self._next_speaker()
        self.cur = spk
        self.since += 1
        self.since[spk] = 0
        # how this turn starts relative to the previous one
        kind = "interrupt" if (self.n > 1 and not first and self._bag("int", self.overlap)) else "gap"
        u = r.random()
        if u < 0.80:
            gap = r.uniform(0.15, 0.9)
        elif u < 0.95:
            gap = r.uniform(0.9, min(2.0, self.max_gap))
        else:
            gap = r.uniform(min(2.0, self.max_gap), self.max_gap)
        n_sent = int(r.choice(N_SENT, p=N_SENT_P))
        sents = []
        for k in range(n_sent):
            if k == 0 and kind == "interrupt" and r.random() < 0.4:
                text = INTERRUPT_OPENERS[int(r.integers(len(INTERRUPT_OPENERS)))]
            else:
                text = self._sentence(spk)
            dp, ds = self._jitter()
            sent = dict(text=text, dp=dp, ds=ds, gain_db=self._gain(spk),
                        pause_ms=ms(r.uniform(0.15, 0.6)), bc=None)
            # a listener's backchannel during this sentence (so it starts inside it)
            if self.n > 1 and self._bag("bc", self.bc_rate):
                bspk = self._other(spk)
                bdp, bds = self._jitter()
                sent["bc"] = dict(spk=bspk, text=BACKCHANNELS[int(r.integers(len(BACKCHANNELS)))],
                                  dp=bdp, ds=bds, gain_db=self._gain(bspk), pos_u=float(r.random()))
            sents.append(sent)
        return dict(spk=spk, kind=kind, gap_ms=ms(gap), ov_u=float(r.random()), sents=sents)


# --------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------

NOISE_PERIOD = 1 << 20  # ~65.5 s loop; FFT-made noise is circular, so tiling is seamless


def make_noise(kind, rng, pool, babble_profiles):
    if kind == "white":
        n = rng.standard_normal(NOISE_PERIOD)
    elif kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(NOISE_PERIOD))
        f = np.fft.rfftfreq(NOISE_PERIOD, 1.0 / SR)
        f[0] = f[1]
        spec /= np.sqrt(np.maximum(f, 20.0))  # 1/f power, flat below 20 Hz
        n = np.fft.irfft(spec, NOISE_PERIOD)
    elif kind == "babble":
        n = make_babble(rng, pool, babble_profiles)
    elif kind == "mix":
        a = make_noise("pink", rng, pool, babble_profiles)
        b = make_noise("babble", rng, pool, babble_profiles)
        n = a + b
    else:
        raise ValueError(kind)
    n = n.astype(np.float64)
    n -= n.mean()
    return (n / np.sqrt((n ** 2).mean())).astype(np.float32)


def make_babble(rng, pool, profiles, talkers=8):
    reqs, plan = [], []
    for t in range(talkers):
        prof = profiles[int(rng.integers(len(profiles)))]
        dp = int(rng.integers(-15, 16))
        pos = int(rng.integers(NOISE_PERIOD))
        total = 0
        while total < NOISE_PERIOD:
            text = SENTENCES[int(rng.integers(len(SENTENCES)))]
            reqs.append((prof, text, dp, int(rng.integers(-10, 11))))
            plan.append((t, pos + total))
            total += int(SR * 3.2)  # provisional; real positions are recomputed below
    clips = list(pool.map(synth_clip, reqs))
    out = np.zeros(NOISE_PERIOD, np.float64)
    cursor = {}
    for (t, start0), c in zip(plan, clips):
        p = cursor.get(t, start0)
        if p - start0 >= NOISE_PERIOD:
            continue
        idx = (p + np.arange(len(c))) % NOISE_PERIOD  # wrap around: seamless loop
        np.add.at(out, idx, c)
        cursor[t] = p + len(c) + int(SR * 0.15)
    return out


# --------------------------------------------------------------------------------------
# Labels and measurement
# --------------------------------------------------------------------------------------

def merge_segments(segs):
    """segs: list of (spk, start_ms, end_ms). Merge same-speaker segments that touch/overlap."""
    out = []
    by = {}
    for spk, s, e in segs:
        by.setdefault(spk, []).append((s, e))
    for spk, lst in by.items():
        lst.sort()
        cs, ce = lst[0]
        for s, e in lst[1:]:
            if s <= ce:
                ce = max(ce, e)
            else:
                out.append((spk, cs, ce))
                cs, ce = s, e
        out.append((spk, cs, ce))
    out.sort(key=lambda t: (t[1], t[2], t[0]))
    return out


def overlap_stats(segs):
    """Sweep line over (spk, s, e) in ms -> (speech_ms, overlap_ms, max_simultaneous)."""
    ev = []
    for _, s, e in segs:
        ev.append((s, 1))
        ev.append((e, -1))
    ev.sort(key=lambda t: (t[0], t[1]))
    cnt, last, speech, ov, mx = 0, None, 0, 0, 0
    for t, d in ev:
        if last is not None and cnt > 0:
            speech += t - last
            if cnt > 1:
                ov += t - last
        cnt += d
        mx = max(mx, cnt)
        last = t
    return speech, ov, mx


def write_rttm(path, name, segs):
    with open(path, "w") as f:
        for spk, s, e in segs:
            f.write(f"SPEAKER {name} 1 {s / 1000:.3f} {(e - s) / 1000:.3f} <NA> <NA> {spk} <NA> <NA>\n")


def read_rttm(path):
    segs = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if not p or p[0] != "SPEAKER":
                continue
            s = float(p[3])
            d = float(p[4])
            segs.append((p[7], ms(s), ms(s + d), p[1]))
    return segs


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2, "expects 16-bit PCM"
        sr, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2")
    if ch > 1:
        x = x.reshape(-1, ch)[:, 0]
    return x.astype(np.float32) / 32768.0, sr, ch


def db(x):
    return 20 * math.log10(max(x, 1e-12))


def median_f0(x, sr, max_frames=1500):
    """Crude autocorrelation F0 (60-400 Hz) over voiced 40 ms frames; median in Hz."""
    fl = int(0.04 * sr)
    n = len(x) // fl
    if n == 0:
        return float("nan")
    fr = x[: n * fl].reshape(n, fl).astype(np.float64)
    en = (fr ** 2).mean(axis=1)
    fr = fr[en > en.max() * 1e-3]
    if len(fr) > max_frames:
        fr = fr[np.linspace(0, len(fr) - 1, max_frames).astype(int)]
    if len(fr) == 0:
        return float("nan")
    fr = fr - fr.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(fr, 2 * fl, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :fl]
    lo, hi = int(sr / 400), int(sr / 60)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    strength = ac[np.arange(len(ac)), lag] / np.maximum(ac[:, 0], 1e-12)
    good = strength > 0.45
    if not good.any():
        return float("nan")
    return float(np.median(sr / lag[good]))


def measure(wav_path, rttm_path, expect_id=None):
    """Independent check of a WAV/RTTM pair; returns a stats dict and list of problems."""
    x, sr, ch = read_wav(wav_path)
    problems = []
    if sr != SR or ch != 1:
        problems.append(f"format {sr} Hz x{ch} (want {SR} Hz mono)")
    rows = read_rttm(rttm_path)
    dur_ms = len(x) * 1000 // sr
    ids = {r[3] for r in rows}
    if expect_id is not None and ids != {expect_id}:
        problems.append(f"RTTM file ids {ids} != {expect_id}")
    segs = [(r[0], r[1], r[2]) for r in rows]
    for spk, s, e in segs:
        if e <= s or s < 0 or e > dur_ms:
            problems.append(f"bad segment {spk} {s}-{e} ms")
    if merge_segments(segs) != sorted(segs, key=lambda t: (t[1], t[2], t[0])):
        problems.append("RTTM has same-speaker segments that touch/overlap (not merged)")
    speech, ov, mx = overlap_stats(segs)
    spks = sorted({s for s, _, _ in segs})
    # per-sample coverage count and owner of exclusive regions
    cover = np.zeros(len(x), np.int16)
    for spk, s, e in segs:
        cover[s * sr // 1000: e * sr // 1000] += 1
    nonspeech = x[cover == 0]
    per = {}
    for spk in spks:
        mask = np.zeros(len(x), bool)
        for sp, s, e in segs:
            if sp == spk:
                mask[s * sr // 1000: e * sr // 1000] = True
        tot = int(mask.sum())
        excl = mask & (cover == 1)
        xs = x[excl]
        per[spk] = dict(
            speech_s=round(tot / sr, 3),
            segments=sum(1 for sp, _, _ in segs if sp == spk),
            exclusive_s=round(int(excl.sum()) / sr, 3),
            rms_dbfs=round(db(float(np.sqrt((xs.astype(np.float64) ** 2).mean()))) if len(xs) else -120, 1),
            f0_hz=round(median_f0(xs, sr), 1) if len(xs) else None,
        )
    seg_sum_ms = sum(e - s for _, s, e in segs)
    sum_spk = sum(ms(v["speech_s"]) for v in per.values())
    if abs(seg_sum_ms - sum_spk) > len(segs):  # rounding of the per-sample masks only
        problems.append(f"RTTM duration sum {seg_sum_ms} ms != per-speaker sum {sum_spk} ms")
    ns_rms = float(np.sqrt((nonspeech.astype(np.float64) ** 2).mean())) if len(nonspeech) else 0.0
    stats = dict(
        duration_s=round(len(x) / sr, 3),
        speakers=len(spks),
        segments=len(segs),
        speech_s=round(speech / 1000, 3),  # union: time with >=1 speaker
        rttm_sum_s=round(seg_sum_ms / 1000, 3),  # sum of RTTM durations
        overlap_s=round(ov / 1000, 3),  # time with >=2 speakers
        overlap_pct_of_speech=round(100.0 * ov / speech, 2) if speech else 0.0,
        max_simultaneous=mx,
        nonspeech_rms_dbfs=round(db(ns_rms), 1) if ns_rms > 0 else None,
        nonspeech_max_abs=float(np.abs(nonspeech).max()) if len(nonspeech) else 0.0,
        peak_dbfs=round(db(float(np.abs(x).max())), 2),
        per_speaker=per,
    )
    return stats, problems


def print_summary(name, st, out=sys.stdout):
    p = lambda *a: print(*a, file=out)
    p(f"== {name}: {st['duration_s']:.1f} s, {st['speakers']} speakers, {st['segments']} RTTM lines")
    p(f"   speech {st['speech_s']:.1f} s (RTTM sum {st['rttm_sum_s']:.1f} s), overlap "
      f"{st['overlap_s']:.1f} s = {st['overlap_pct_of_speech']:.1f}% of speech, "
      f"max {st['max_simultaneous']} simultaneous")
    ns = st["nonspeech_rms_dbfs"]
    p(f"   non-speech RMS {'digital silence' if ns is None else f'{ns:.1f} dBFS'}"
      f" (max |x| {st['nonspeech_max_abs']:.5f}), peak {st['peak_dbfs']:.2f} dBFS")
    for spk, v in st["per_speaker"].items():
        p(f"   {spk}: {v['speech_s']:7.1f} s in {v['segments']:4d} lines, exclusive {v['exclusive_s']:7.1f} s, "
          f"RMS {v['rms_dbfs']:6.1f} dBFS, median F0 {v['f0_hz']} Hz")


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------

def tool_versions():
    v = {}
    for cmd in (["espeak-ng", "--version"], ["sox", "--version"]):
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            v[cmd[0]] = r.stdout.strip().splitlines()[0]
        except OSError:
            v[cmd[0]] = None
    try:  # Debian package versions, where dpkg exists
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "espeak-ng",
                            "espeak-ng-data", "sox", "libsox3"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        v["debian_packages"] = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    except OSError:
        pass
    return v


def apply_reverb(x, amount, tmpdir):
    with tempfile.TemporaryDirectory(dir=tmpdir) as td:
        a, b = os.path.join(td, "in.f32"), os.path.join(td, "out.f32")
        x.astype("<f4").tofile(a)
        # reverberance, HF damping, room scale, stereo depth, pre-delay ms, wet gain dB
        subprocess.run(["sox", "-V1", "-t", "f32", "-r", str(SR), "-c", "1", a, "-t", "f32", b,
                        "reverb", str(amount), "50", "40", "100", "5", "-4"], check=True)
        y = np.fromfile(b, dtype="<f4")
    n = len(x)
    if len(y) < n:
        y = np.concatenate([y, np.zeros(n - len(y), np.float32)])
    return y[:n].astype(np.float32)


def generate(args):
    t0 = time.time()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y espeak-ng sox")
    names = args.voices.split(",") if args.voices else None
    profiles = pick_profiles(args.speakers, args.similar, names)
    ss = np.random.SeedSequence(args.seed)
    plan_rng, noise_rng = [np.random.default_rng(s) for s in ss.spawn(2)]
    planner = Planner(plan_rng, args.speakers, args.overlap, args.max_gap, args.gain_var)
    spk_ids = [f"spk{i}" for i in range(args.speakers)]

    total_ms = ms(args.minutes * 60)
    if total_ms < 5000:
        raise SystemExit("--minutes too small (need at least 5 s)")
    end_margin_ms = 300
    buf = np.zeros(total_ms * MS, np.float32)
    utts = []  # (spk_id, start_ms, end_ms, kind)

    def place(clip, start_ms, spk, gain_db, kind):
        n = len(clip)
        assert n % MS == 0
        g = np.float32(10 ** (gain_db / 20))
        buf[start_ms * MS: start_ms * MS + n] += clip * g
        utts.append((spk_ids[spk], start_ms, start_ms + n // MS, kind))

    pos_ms = ms(planner.rng.uniform(0.3, 1.0))  # end of the previous turn
    prev_last = None  # (start_ms, end_ms) of the previous turn's last sentence
    done = False
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        while not done:
            turns = [planner.next_turn() for _ in range(24)]
            reqs = []
            for t in turns:
                for sd in t["sents"]:
                    reqs.append((profiles[t["spk"]], sd["text"], sd["dp"], sd["ds"]))
                    if sd["bc"]:
                        b = sd["bc"]
                        reqs.append((profiles[b["spk"]], b["text"], b["dp"], b["ds"]))
            clips = iter(list(pool.map(synth_clip, reqs)))
            for t in turns:
                sc, bcs = [], []
                for sd in t["sents"]:
                    sc.append(next(clips))
                    bcs.append(next(clips) if sd["bc"] else None)
                lens = [len(c) // MS for c in sc]
                if t["kind"] == "interrupt" and prev_last is not None:
                    # start 0.3-3 s before the previous turn ends, but not within the first
                    # 0.2 s of its last sentence
                    ps, pe = prev_last
                    max_ov = min(3000, (pe - ps) - 200)
                    if max_ov >= 300:
                        start = pe - (300 + int(t["ov_u"] * (max_ov - 300)))
                    else:
                        start = pe - max(1, (pe - ps) // 2)
                else:
                    start = pos_ms + t["gap_ms"]
                ends, p = [], start
                for k, L in enumerate(lens):
                    if k:
                        p += t["sents"][k - 1]["pause_ms"]
                    ends.append((p, p + L))
                    p += L
                limit = total_ms - end_margin_ms
                if ends[-1][1] > limit:  # the meeting ends: keep what fits, then stop
                    done = True
                    keep = sum(1 for _, e in ends if e <= limit)
                    if keep == 0:
                        break
                    ends, sc, bcs = ends[:keep], sc[:keep], bcs[:keep]
                turn_end = ends[-1][1]
                for (s, e), c, sd in zip(ends, sc, t["sents"]):
                    if len(c):
                        place(c, s, t["spk"], sd["gain_db"], t["kind"] if s == start else "cont")
                for (s, e), bc, sd in zip(ends, bcs, t["sents"]):
                    if bc is None or not len(bc):
                        continue
                    b = sd["bc"]
                    bl = len(bc) // MS
                    lo, hi = s + 300, e - 200 - bl
                    if hi > lo:  # inside the sentence
                        bpos = lo + int(b["pos_u"] * (hi - lo))
                    else:  # short sentence: straddle its end
                        bpos = max(s + 100, e - bl // 2)
                    if bpos + bl <= total_ms - end_margin_ms:
                        place(bc, bpos, b["spk"], b["gain_db"], "backchannel")
                        turn_end = max(turn_end, bpos + bl)
                pos_ms = max(pos_ms, turn_end)
                prev_last = ends[-1]
                if done:
                    break
        t_synth = time.time() - t0

        # ---- room + noise ------------------------------------------------------------
        segs = merge_segments([(u[0], u[1], u[2]) for u in utts])
        if args.reverb > 0:
            buf = apply_reverb(buf, args.reverb, args.tmpdir)
        sp2, spn = 0.0, 0
        for _, s, e in segs:
            seg = buf[s * MS: e * MS].astype(np.float64)
            sp2 += float((seg ** 2).sum())
            spn += len(seg)
        speech_rms = math.sqrt(sp2 / max(spn, 1))
        if args.snr is not None:
            babble_profiles = [p for p in DISTINCT + TWINS if p["name"] not in {q["name"] for q in profiles}]
            noise = make_noise(args.noise, noise_rng, pool, babble_profiles or DISTINCT)
            k = np.float32(speech_rms * 10 ** (-args.snr / 20))
            off = int(noise_rng.integers(NOISE_PERIOD))
            noise = np.roll(noise, -off) * k
            for i in range(0, len(buf), NOISE_PERIOD):
                j = min(len(buf), i + NOISE_PERIOD)
                buf[i:j] += noise[: j - i]
    # ---- level: active speech at --level dBFS, never above -0.5 dBFS peak ------------
    scale = 10 ** (args.level / 20) / max(speech_rms, 1e-9)
    peak = float(np.abs(buf).max()) * scale
    if peak > 10 ** (-0.5 / 20):
        scale *= 10 ** (-0.5 / 20) / peak
    os.makedirs(args.out, exist_ok=True)
    wav_path = os.path.join(args.out, args.name + ".wav")
    rttm_path = os.path.join(args.out, args.name + ".rttm")
    with wave.open(wav_path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        step = 1 << 22
        for i in range(0, len(buf), step):
            y = np.clip(np.round(buf[i:i + step] * np.float32(scale * 32767)), -32768, 32767)
            w.writeframes(y.astype("<i2").tobytes())
    write_rttm(rttm_path, args.name, segs)
    buf = None  # free the mix before measuring the written file
    t_total = time.time() - t0

    # ---- consistency of the placed utterances with the merged labels -----------------
    problems = []
    for spk in spk_ids:
        raw = sorted((s, e) for sp, s, e, _ in utts if sp == spk)
        union = 0
        ce = -1
        for s, e in raw:
            if s >= ce:
                union += e - s
            elif e > ce:
                union += e - ce
            ce = max(ce, e)
        merged = sum(e - s for sp, s, e in segs if sp == spk)
        if union != merged:
            problems.append(f"{spk}: union of utterances {union} ms != merged RTTM {merged} ms")
        if not raw:
            problems.append(f"{spk} never speaks (meeting too short?)")
    stats, p2 = measure(wav_path, rttm_path, args.name)
    problems += p2
    if args.snr is None and args.reverb == 0 and stats["nonspeech_max_abs"] != 0.0:
        problems.append("clean file has non-zero samples outside the labelled speech")
    n_utt = len(utts)
    n_ov_start = 0
    ordered = sorted(utts, key=lambda u: u[1])
    run_end = -1
    for u in ordered:
        if u[1] < run_end:
            n_ov_start += 1
        run_end = max(run_end, u[2])
    meta = dict(
        name=args.name,
        command="python3 scripts/synth_meeting.py " + " ".join(sys.argv[1:]),
        args={k: v for k, v in vars(args).items()
              if k not in ("out", "jobs", "tmpdir", "verify", "quiet", "list_voices")},
        tools=tool_versions(),
        speakers={spk_ids[i]: dict(profiles[i], base_gain_db=round(float(planner.spk_gain_db[i]), 2))
                  for i in range(args.speakers)},
        utterances=n_utt,
        utterances_starting_in_overlap=n_ov_start,
        utterances_by_kind={k: sum(1 for u in utts if u[3] == k)
                            for k in ("gap", "interrupt", "backchannel", "cont")},
        stats=stats,
        problems=problems,
    )
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    if not args.quiet:
        print_summary(args.name, stats)
        print(f"   {n_utt} utterances, {n_ov_start} start inside other speech; "
              f"{meta['utterances_by_kind']}")
        for i, p in enumerate(profiles):
            print(f"   spk{i} = {p['name']} ({p['gender']}) {p['voice']} -p {p['pitch']} -s {p['wpm']} "
                  f"tape {p['tape']}" + (f"  [similar to {p['twin_of']}]" if "twin_of" in p else ""))
        print(f"   wrote {wav_path} ({os.path.getsize(wav_path) / 1e6:.1f} MB), {rttm_path}; "
              f"{t_total:.1f} s ({t_synth:.1f} s synthesis)")
    if problems:
        for p in problems:
            print("PROBLEM:", p, file=sys.stderr)
        return 1
    return 0


def parse_snr(s):
    if s.lower() in ("none", "off", "inf", "clean"):
        return None
    return float(s)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory (created)")
    ap.add_argument("--name", help="file stem and RTTM file id")
    ap.add_argument("--speakers", type=int, default=2,
                    help="number of speakers (up to 10 distinct voices, +--similar twins)")
    ap.add_argument("--minutes", type=float, default=2.0, help="exact output duration in minutes")
    ap.add_argument("--overlap", type=float, default=0.0,
                    help="target share of utterances that start while another speaker talks "
                         "(interruptions + backchannels, see below); 0 = no overlap")
    ap.add_argument("--snr", type=parse_snr, default=None, help="noise SNR in dB against speech, or 'none'")
    ap.add_argument("--noise", choices=["white", "pink", "babble", "mix"], default="pink",
                    help="noise type when --snr is given (mix = pink + babble, equal power)")
    ap.add_argument("--reverb", type=float, default=0.0,
                    help="sox reverberance 0-100 applied to the speech (0 = off; ~20-40 is 'slight')")
    ap.add_argument("--similar", type=int, default=0,
                    help="replace the last K voices with near-twins of the first K (same gender/accent)")
    ap.add_argument("--voices", help="comma-separated voice names instead of the default set (--list-voices)")
    ap.add_argument("--gain-var", type=float, default=2.0, help="per-utterance gain jitter, +-dB")
    ap.add_argument("--max-gap", type=float, default=4.0, help="longest silence between turns, s")
    ap.add_argument("--level", type=float, default=-24.0, help="speech RMS of the output in dBFS")
    ap.add_argument("--seed", type=int, default=0, help="same seed + arguments = same files")
    ap.add_argument("--jobs", type=int, default=1,
                    help="parallel espeak-ng/sox processes (result does not depend on it)")
    ap.add_argument("--tmpdir", default=None, help="temp dir for the reverb pass")
    ap.add_argument("--quiet", action="store_true", help="no summary on stdout")
    ap.add_argument("--list-voices", action="store_true", help="print the voice profiles and exit")
    ap.add_argument("--verify", nargs=2, metavar=("WAV", "RTTM"),
                    help="measure an existing WAV/RTTM pair, print the summary and exit")
    args = ap.parse_args(argv)
    if args.list_voices:
        for p in DISTINCT + TWINS:
            print(f"{p['name']:7s} {p['gender']} {p['voice']:24s} -p {p['pitch']:2d} -s {p['wpm']} "
                  f"tape {p['tape']:.2f}" + (f"  twin of {p['twin_of']}" if "twin_of" in p else ""))
        return 0
    if args.verify:
        st, problems = measure(*args.verify)
        print_summary(os.path.basename(args.verify[0]), st)
        for p in problems:
            print("PROBLEM:", p, file=sys.stderr)
        return 1 if problems else 0
    if not args.out or not args.name:
        ap.error("--out and --name are required")
    if args.speakers < 1:
        ap.error("--speakers must be >= 1")
    if not 0 <= args.overlap <= 1:
        ap.error("--overlap must be in [0, 1]")
    if args.max_gap < 0.9:
        ap.error("--max-gap must be >= 0.9")
    return generate(args)


if __name__ == "__main__":
    sys.exit(main())
