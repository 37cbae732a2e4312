//! A refactor's check that no decision of the echo guard moved (feature `guard-hash`, native
//! tests only; `scripts/guard-bit-exact.sh`): each test thread hashes what the guard sent and
//! its state after every frame, and writes the hash to `$GUARD_HASH_DIR/<binary>.<test>` when
//! the thread ends. Two builds that hash alike made the same decisions, bit for bit. Nothing
//! here allocates before the thread ends (the no-allocation test runs with it).

use std::cell::RefCell;

use super::{Duck, EchoGuard};

/// FNV-1a over 64-bit words, and how many words it took.
struct Hash(u64, u64);

impl Hash {
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x0100_0000_01b3);
        self.1 += 1;
    }

    fn floats(&mut self, v: &[f32]) {
        for x in v {
            self.word(u64::from(x.to_bits()));
        }
    }
}

impl Drop for Hash {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("GUARD_HASH_DIR") else {
            return;
        };
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        // Cargo names test binaries `<name>-<hash>`: the name is what stays between builds.
        let binary = binary.split('-').next().unwrap_or_default().to_string();
        let thread = std::thread::current()
            .name()
            .unwrap_or("main")
            .replace("::", ".");
        let path = std::path::Path::new(&dir).join(format!("{binary}.{thread}"));
        let _ = std::fs::write(path, format!("{:016x} {}\n", self.0, self.1));
    }
}

thread_local!(static HASH: RefCell<Hash> = const { RefCell::new(Hash(0xcbf2_9ce4_8422_2325, 0)) });

/// What the guard sent in one `process_pair` call.
pub(super) fn samples(out: &[i16]) {
    HASH.with_borrow_mut(|h| {
        for &s in out {
            h.word(u64::from(s as u16));
        }
    });
}

/// The guard's state after a frame, `sent` samples out so far in this call.
pub(super) fn state(g: &EchoGuard, sent: usize) {
    HASH.with_borrow_mut(|h| {
        for w in [
            sent as u64,
            g.state as u64,
            g.path as u64,
            g.tail as u64,
            g.lag as u64,
            g.guarded_samples,
            g.line_len as u64,
            u64::from(g.evidence),
            u64::from(g.sustained),
            u64::from(g.doubt),
            g.suspected,
            g.undone,
            u64::from(g.learnt),
            u64::from(g.quiet),
            u64::from(g.swapping),
            u64::from(g.loop_quiet),
            g.candidate.0 as u64,
            g.candidate.1 as u64,
            u64::from(g.run),
            u64::from(g.recent),
            u64::from(g.recent_explained),
        ] {
            h.word(w);
        }
        h.floats(&[
            g.room_decay_db,
            g.removal_db,
            g.noise,
            g.peak,
            g.capture_peak,
        ]);
        h.floats(&g.coupling);
        h.floats(&g.ring_coupling);
        h.floats(&g.room_tail);
        for s in &g.shadow {
            h.floats(s);
        }
        match &g.duck {
            None => h.word(u64::MAX),
            Some(d) => duck(h, d),
        }
    });
}

fn duck(h: &mut Hash, d: &Duck) {
    for w in [
        d.since,
        u64::from(d.judged),
        u64::from(d.voiced),
        u64::from(d.over_ducked),
    ] {
        h.word(w);
    }
    h.floats(&d.before);
    h.floats(&d.heard);
    for w in &d.window {
        h.floats(w);
    }
}
