use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AHEAD_BLOCK, AHEAD_BLOCKS, Input, input};

/// `length` bytes of a fixed pseudo-random sequence, handed out at most `step` bytes per
/// read (as a socket does), then an error instead of the end when `fail`.
struct Source {
    at: usize,
    length: usize,
    step: usize,
    fail: bool,
    dropped: Option<Arc<AtomicBool>>,
}

fn byte(at: usize) -> u8 {
    (at.wrapping_mul(2_654_435_761) >> 13) as u8
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.length && self.fail {
            return Err(std::io::Error::other("the disk went away"));
        }
        let count = buf.len().min(self.step).min(self.length - self.at);
        for (offset, slot) in buf[..count].iter_mut().enumerate() {
            *slot = byte(self.at + offset);
        }
        self.at += count;
        Ok(count)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(dropped) = &self.dropped {
            dropped.store(true, Ordering::SeqCst);
        }
    }
}

fn source(length: usize, step: usize) -> Box<dyn Read + Send> {
    Box::new(Source {
        at: 0,
        length,
        step,
        fail: false,
        dropped: None,
    })
}

/// Everything `reader` gives, taken through `fill_buf` and `consume` in bites of varying
/// size, and through `read` every third bite.
fn drain(reader: &mut Input) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut bite = 1usize;
    loop {
        bite = bite * 7 % 100_003 + 1;
        if bite.is_multiple_of(3) {
            let mut buf = vec![0; bite];
            let read = reader.read(&mut buf)?;
            if read == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..read]);
            continue;
        }
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(out);
        }
        let (take, length) = (bite.min(available.len()), available.len());
        out.extend_from_slice(&available[..take]);
        assert_eq!(reader.buffer().len(), length);
        reader.consume(take);
    }
}

#[test]
fn reading_ahead_gives_the_bytes_a_buffered_read_gives() {
    let lengths = [
        0,
        1,
        AHEAD_BLOCK - 1,
        AHEAD_BLOCK,
        AHEAD_BLOCK + 1,
        3 * AHEAD_BLOCK + 7,
        // More blocks than are ever made: they go round.
        (3 * AHEAD_BLOCKS) * AHEAD_BLOCK,
    ];
    for length in lengths {
        for step in [usize::MAX, 7_919] {
            let expected: Vec<u8> = (0..length).map(byte).collect();
            let mut ahead = Input::read_ahead(source(length, step)).unwrap();
            let mut buffered = input(source(length, step));
            assert_eq!(
                drain(&mut ahead).unwrap(),
                expected,
                "{length} bytes read ahead"
            );
            assert_eq!(drain(&mut buffered).unwrap(), expected, "{length} bytes");
            // The end stays the end.
            assert!(ahead.fill_buf().unwrap().is_empty());
        }
    }
}

#[test]
fn a_failed_read_ahead_reaches_the_decoder_after_the_bytes_before_it() {
    let length = AHEAD_BLOCK + AHEAD_BLOCK / 2;
    let failing = Box::new(Source {
        at: 0,
        length,
        step: 65_536,
        fail: true,
        dropped: None,
    });
    let mut ahead = Input::read_ahead(failing).unwrap();
    let mut got = Vec::new();
    let error = loop {
        match ahead.fill_buf() {
            Ok([]) => panic!("the stream's failure was read as its end"),
            Ok(available) => {
                let count = available.len();
                got.extend_from_slice(available);
                ahead.consume(count);
            }
            Err(error) => break error,
        }
    };
    assert_eq!(error.to_string(), "the disk went away");
    // Whole blocks before the failing one arrive; the failing block's bytes do not.
    assert_eq!(got.len(), AHEAD_BLOCK);
    assert!(got.iter().enumerate().all(|(at, &value)| value == byte(at)));
}

#[test]
fn a_decoder_that_stops_early_lets_the_reading_thread_go() {
    let dropped = Arc::new(AtomicBool::new(false));
    let endless = Box::new(Source {
        at: 0,
        length: usize::MAX,
        step: usize::MAX,
        fail: false,
        dropped: Some(Arc::clone(&dropped)),
    });
    let mut ahead = Input::read_ahead(endless).unwrap();
    let first = ahead.fill_buf().unwrap().len();
    assert_eq!(first, AHEAD_BLOCK);
    drop(ahead);
    // The thread notices at its next send and ends, dropping the stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the reading thread kept the stream"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
