//! The keys of the etcd scenarios: key `i` is the decimal `i` zero-padded to `--key-size`
//! bytes, for `i` in `[0, --key-space)`; which key request `n` uses.
//!
//! It owns the key format, so that every scenario (and a `put --sequential-keys` load followed
//! by a `range`) agrees on it. It must never produce a key outside the key space, nor a key of
//! another length: a key space that does not fit in `--key-size` digits is an error.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug)]
pub struct KeySpace {
    size: usize,
    space: u64,
}

impl KeySpace {
    pub fn new(size: usize, space: u64) -> Result<KeySpace, String> {
        if space == 0 {
            return Err("--key-space must be at least 1".into());
        }
        let widest = (space - 1).to_string().len();
        if widest > size {
            return Err(format!(
                "--key-size {size} is too small for --key-space {space}: key {} needs {widest} bytes \
                 (keys are zero-padded decimals)",
                space - 1
            ));
        }
        Ok(KeySpace { size, space })
    }

    /// Key `i` (`i < space`).
    pub fn key(&self, i: u64) -> Vec<u8> {
        format!("{i:0width$}", width = self.size).into_bytes()
    }

    /// `(key, range_end)` covering exactly the key space: `[key 0, last key + "\0")`, i.e. every
    /// key of the space and nothing after the last one; just key 0 for a space of one.
    pub fn whole_range(&self) -> (Vec<u8>, Vec<u8>) {
        if self.space == 1 {
            return (self.key(0), Vec::new());
        }
        let mut end = self.key(self.space - 1);
        end.push(0);
        (self.key(0), end)
    }
}

/// etcd's prefix range end (clientv3 `GetPrefixRangeEnd`): the key with its last byte below
/// 0xff incremented and the rest dropped; `"\0"` (every key >= key) if there is none.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Which key a client's request `n` writes: `n mod space` with `--sequential-keys` (so that
/// `--total` = `--key-space` writes every key once), else uniformly at random.
pub struct KeyPicker {
    space: u64,
    sequential: bool,
    rng: SmallRng,
}

impl KeyPicker {
    pub fn new(space: &KeySpace, sequential: bool) -> KeyPicker {
        KeyPicker {
            space: space.space,
            sequential,
            rng: SmallRng::from_os_rng(),
        }
    }

    pub fn index(&mut self, n: u64) -> u64 {
        if self.sequential {
            n % self.space
        } else {
            self.rng.random_range(0..self.space)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_bounds() {
        let k = KeySpace::new(8, 1000).unwrap();
        assert_eq!(k.key(0), b"00000000");
        assert_eq!(k.key(999), b"00000999");
        assert_eq!(
            k.whole_range(),
            (b"00000000".to_vec(), b"00000999\0".to_vec())
        );
        assert_eq!(KeySpace::new(8, 1).unwrap().whole_range().1, b"");
        assert!(KeySpace::new(3, 1000).is_ok());
        assert!(KeySpace::new(3, 1001).is_err());
        assert!(KeySpace::new(0, 1).is_err());
        assert!(KeySpace::new(8, 0).is_err());
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn picking() {
        let k = KeySpace::new(8, 10).unwrap();
        let mut seq = KeyPicker::new(&k, true);
        assert_eq!(seq.index(13), 3);
        let mut rnd = KeyPicker::new(&k, false);
        assert!((0..1000).all(|n| rnd.index(n) < 10));
    }
}
