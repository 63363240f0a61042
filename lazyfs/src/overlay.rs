//! What a page cache holds for one file: the bytes written since the last fsync, kept
//! here and not on the backing disk, and the file's size as the writer sees it.
//!
//! A read is the backing file's bytes with the pending extents laid over them; an fsync
//! writes the extents and the size through; a crash drops them. Extents never overlap: a
//! write over pending bytes replaces them, as a write over a cached page does.

use std::collections::BTreeMap;

/// One file's unsynced data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Offset -> bytes; extents never overlap.
    extents: BTreeMap<u64, Vec<u8>>,
    /// The size the writer sees (writes past the end and truncations move it).
    size: u64,
    /// Backing bytes at or past this offset are not part of the file any more (a
    /// truncate that has not reached the disk): they read as zeros if the file grows.
    disk_end: u64,
}

impl Pending {
    /// A file whose backing copy is `size` bytes long, with nothing pending yet.
    pub fn over(size: u64) -> Pending {
        Pending {
            extents: BTreeMap::new(),
            size,
            disk_end: size,
        }
    }

    /// The size the writer sees.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held that the backing disk does not have yet.
    pub fn bytes(&self) -> u64 {
        self.extents.values().map(|e| e.len() as u64).sum()
    }

    /// Records a write of `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        self.cut(offset, end);
        self.extents.insert(offset, data.to_vec());
        self.size = self.size.max(end);
    }

    /// Sets the size (a truncate, or an extension with zeros). Bytes beyond the new size
    /// are dropped; a later extension reads them as zeros, as after a real truncate.
    pub fn set_size(&mut self, size: u64) {
        self.cut(size, u64::MAX);
        self.size = size;
        self.disk_end = self.disk_end.min(size);
    }

    /// Where the backing file must be cut before the extents are written through (a
    /// pending truncate), if anywhere.
    pub fn disk_end(&self) -> u64 {
        self.disk_end
    }

    /// Removes pending bytes in `[from, to)`, splitting extents that straddle it.
    fn cut(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let starts: Vec<u64> = self
            .extents
            .range(..to)
            .filter(|(s, e)| *s + e.len() as u64 > from)
            .map(|(s, _)| *s)
            .collect();
        for s in starts {
            let e = self.extents.remove(&s).expect("listed");
            let end = s + e.len() as u64;
            if s < from {
                self.extents.insert(s, e[..(from - s) as usize].to_vec());
            }
            if end > to {
                self.extents.insert(to, e[(to - s) as usize..].to_vec());
            }
        }
    }

    /// Lays the pending extents over `buf`, which holds the backing bytes of the range
    /// starting at `offset` (zero-filled where the backing file ends); trims `buf` to the
    /// size the writer sees.
    pub fn read_into(&self, offset: u64, buf: &mut Vec<u8>) {
        let end = (offset + buf.len() as u64).min(self.size);
        buf.truncate(end.saturating_sub(offset) as usize);
        if self.disk_end < end {
            let from = self.disk_end.saturating_sub(offset) as usize;
            buf[from..].fill(0);
        }
        for (&s, e) in self.extents.range(..end) {
            let e_end = s + e.len() as u64;
            if e_end <= offset {
                continue;
            }
            let from = s.max(offset);
            let to = e_end.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&e[(from - s) as usize..(to - s) as usize]);
        }
    }

    /// The extents to write through, in order, and the size to set.
    pub fn extents(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.extents.iter().map(|(s, e)| (*s, e.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes a reader sees: `disk` with `p` over it.
    fn view(disk: &[u8], p: &Pending) -> Vec<u8> {
        let mut buf = disk.to_vec();
        buf.resize(p.size().max(disk.len() as u64) as usize, 0);
        p.read_into(0, &mut buf);
        buf
    }

    #[test]
    fn writes_overlay_the_disk_and_later_writes_win() {
        let disk = b"0123456789".to_vec();
        let mut p = Pending::over(10);
        p.write(2, b"ab");
        p.write(3, b"XYZ");
        assert_eq!(view(&disk, &p), b"01aXYZ6789");
        assert_eq!(p.bytes(), 4);
        p.write(8, b"tail!");
        assert_eq!(view(&disk, &p), b"01aXYZ67tail!");
        assert_eq!(p.size(), 13);
        // A read of a window sees the same bytes.
        let mut w = disk[4..].to_vec();
        w.resize(9, 0);
        p.read_into(4, &mut w);
        assert_eq!(w, b"YZ67tail!");
    }

    #[test]
    fn a_truncate_hides_the_disk_past_it_and_growth_reads_zeros() {
        let disk = b"0123456789".to_vec();
        let mut p = Pending::over(10);
        p.write(1, b"a");
        p.set_size(4);
        assert_eq!(view(&disk, &p), b"0a23");
        p.write(6, b"z");
        assert_eq!(view(&disk, &p), b"0a23\0\0z");
        let mut q = Pending::over(10);
        q.set_size(0);
        q.write(0, b"new");
        assert_eq!(view(&disk, &q), b"new");
    }

    #[test]
    fn extents_written_through_in_order_reproduce_the_view() {
        let disk = b"abcdefghij".to_vec();
        let mut p = Pending::over(10);
        p.write(5, b"55555");
        p.write(0, b"00");
        p.write(7, b"7");
        p.set_size(8);
        p.write(9, b"9");
        let mut written = disk.clone();
        written.truncate(p.disk_end() as usize);
        for (at, bytes) in p.extents() {
            let end = at as usize + bytes.len();
            if written.len() < end {
                written.resize(end, 0);
            }
            written[at as usize..end].copy_from_slice(bytes);
        }
        written.truncate(p.size() as usize);
        assert_eq!(written, view(&disk, &p));
    }
}
