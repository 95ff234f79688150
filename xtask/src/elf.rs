//! Just enough ELF reading to tell whether an executable is statically linked.
//!
//! A dynamically linked executable names its loader (`/lib64/ld-linux-x86-64.so.2`) in a
//! `PT_INTERP` program header; a static or static-pie executable has none and runs in an empty
//! `FROM scratch` image. Finding it takes five header fields, so a general ELF crate would be far
//! more code than the job.

use anyhow::{Result, bail, ensure};

/// Program header type naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// Whether `elf` (a whole 64-bit little-endian ELF file) has no `PT_INTERP` program header.
pub fn is_static(elf: &[u8]) -> Result<bool> {
    ensure!(elf.get(..4) == Some(b"\x7fELF"), "not an ELF file");
    ensure!(elf.get(4) == Some(&2), "not a 64-bit ELF file");
    ensure!(elf.get(5) == Some(&1), "not a little-endian ELF file");
    let phoff = read_u64(elf, 0x20)?;
    let phentsize = u64::from(read_u16(elf, 0x36)?);
    let phnum = u64::from(read_u16(elf, 0x38)?);
    for index in 0..phnum {
        let offset = index
            .checked_mul(phentsize)
            .and_then(|relative| relative.checked_add(phoff))
            .and_then(|offset| usize::try_from(offset).ok());
        let Some(offset) = offset else {
            bail!("program header {index} lies outside the file")
        };
        if read_u32(elf, offset)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

fn field<const N: usize>(elf: &[u8], offset: usize) -> Result<[u8; N]> {
    let bytes = offset
        .checked_add(N)
        .and_then(|end| elf.get(offset..end))
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok());
    match bytes {
        Some(bytes) => Ok(bytes),
        None => bail!("truncated ELF file: no {N} bytes at offset {offset:#x}"),
    }
}

fn read_u16(elf: &[u8], offset: usize) -> Result<u16> {
    field(elf, offset).map(u16::from_le_bytes)
}

fn read_u32(elf: &[u8], offset: usize) -> Result<u32> {
    field(elf, offset).map(u32::from_le_bytes)
}

fn read_u64(elf: &[u8], offset: usize) -> Result<u64> {
    field(elf, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF64 header followed by `types.len()` program headers of 56 bytes.
    fn elf_with_program_headers(types: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56 * types.len()];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        let count = u16::try_from(types.len()).unwrap();
        elf[0x38..0x3a].copy_from_slice(&count.to_le_bytes());
        for (index, kind) in types.iter().enumerate() {
            let at = 64 + 56 * index;
            elf[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        }
        elf
    }

    #[test]
    fn an_executable_without_an_interpreter_is_static() {
        // PT_LOAD and PT_DYNAMIC: what a static-pie glibc binary has.
        assert!(is_static(&elf_with_program_headers(&[1, 2, 1])).unwrap());
    }

    #[test]
    fn an_executable_naming_a_loader_is_dynamic() {
        assert!(!is_static(&elf_with_program_headers(&[6, PT_INTERP, 1])).unwrap());
    }

    #[test]
    fn this_test_binary_built_without_crt_static_is_seen_as_dynamic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static(&me).unwrap());
    }

    #[test]
    fn a_file_that_is_not_elf_is_an_error() {
        assert!(is_static(b"#!/bin/sh\necho hi\n").is_err());
    }

    #[test]
    fn program_headers_past_the_end_of_the_file_are_an_error() {
        let mut elf = elf_with_program_headers(&[1]);
        elf.truncate(66);
        assert!(is_static(&elf).is_err());
    }
}
