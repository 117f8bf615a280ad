//! Reading NumPy's `.npy` arrays and `.npz` archives of them from bytes, into named arrays of
//! `f64` with their shapes.
//!
//! A `.npy` file is a magic string, a version, a header that is a Python dictionary literal
//! (`{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }`) and the elements, raw. The
//! element types read are little-endian `f8`, `f4`, `i8`, `i4` and `b1` (booleans, as 0 and 1),
//! in C (row-major) order; anything else is an error that says what was found. A `.npz` file is
//! a zip archive of `.npy` files, stored (`np.savez`) or deflated (`np.savez_compressed`); each
//! member's name without `.npy` names its array.

/// One array: its name, shape and elements, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The array's name: the archive member's name without `.npy`, or the file's stem.
    pub name: String,
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The elements in C order, converted to `f64`.
    pub data: Vec<f64>,
}

/// Why bytes are not an array or an archive this reader handles, with the byte offset where
/// the problem lies (for a label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyError {
    /// Where in the file.
    pub offset: usize,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
}

impl NpyError {
    fn at(offset: usize, message: impl Into<String>) -> NpyError {
        NpyError {
            offset,
            message: message.into(),
        }
    }
}

/// The first bytes of every `.npy` file.
pub const NPY_MAGIC: &[u8] = b"\x93NUMPY";
/// The first bytes of a zip archive (and so of a `.npz` file).
pub const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Integers above 2^53 in magnitude are not all representable in `f64`.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Reads one `.npy` array named `name` from `bytes`.
pub fn read_npy(name: &str, bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if !bytes.starts_with(NPY_MAGIC) {
        return Err(NpyError::at(
            0,
            "does not start with NumPy's `\\x93NUMPY` magic string",
        ));
    }
    let major = *bytes
        .get(6)
        .ok_or_else(|| NpyError::at(bytes.len(), "ends inside the version"))?;
    let (header_start, header_len): (usize, usize) = match major {
        1 => {
            let raw = bytes
                .get(8..10)
                .ok_or_else(|| NpyError::at(bytes.len(), "ends inside the header length"))?;
            (10, usize::from(u16::from_le_bytes([raw[0], raw[1]])))
        }
        2 | 3 => {
            let raw = bytes
                .get(8..12)
                .ok_or_else(|| NpyError::at(bytes.len(), "ends inside the header length"))?;
            let length = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            (12, usize::try_from(length).unwrap_or(usize::MAX))
        }
        other => {
            return Err(NpyError::at(
                6,
                format!("is in `.npy` format version {other}, which is not 1, 2 or 3"),
            ))
        }
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| NpyError::at(bytes.len(), "ends inside the header"))?;
    let header = std::str::from_utf8(&bytes[header_start..header_end])
        .map_err(|_| NpyError::at(header_start, "has a header that is not text"))?;
    let descr = header_string(header, "descr")
        .ok_or_else(|| NpyError::at(header_start, "has no `descr` in its header"))?;
    let fortran = header_value(header, "fortran_order")
        .ok_or_else(|| NpyError::at(header_start, "has no `fortran_order` in its header"))?;
    if fortran.starts_with("True") {
        return Err(NpyError::at(
            header_start,
            "is in Fortran (column-major) order; save it in C order (`np.ascontiguousarray`)",
        ));
    }
    let shape = header_shape(header)
        .ok_or_else(|| NpyError::at(header_start, "has no readable `shape` in its header"))?;
    let count = shape
        .iter()
        .try_fold(1usize, |total, &extent| total.checked_mul(extent))
        .ok_or_else(|| NpyError::at(header_start, format!("has a shape {shape:?} too large")))?;
    let element = Element::parse(&descr).ok_or_else(|| {
        NpyError::at(
            header_start,
            format!(
                "holds elements of type `{descr}`; the types read are little-endian `<f8`, `<f4`, `<i8`, `<i4` and `|b1`"
            ),
        )
    })?;
    let body = &bytes[header_end..];
    let needed = count
        .checked_mul(element.size())
        .ok_or_else(|| NpyError::at(header_start, format!("has a shape {shape:?} too large")))?;
    if body.len() < needed {
        return Err(NpyError::at(
            bytes.len(),
            format!(
                "holds {} bytes of elements, but its shape {shape:?} of `{descr}` needs {needed}",
                body.len()
            ),
        ));
    }
    let data = element
        .decode(&body[..needed])
        .map_err(|(index, problem)| NpyError::at(header_end + index * element.size(), problem))?;
    Ok(NpyArray {
        name: name.to_string(),
        shape,
        data,
    })
}

/// Reads every array of a `.npz` archive, in the order of its central directory.
pub fn read_npz(bytes: &[u8]) -> Result<Vec<NpyArray>, NpyError> {
    let members = zip_members(bytes)?;
    let mut arrays = Vec::with_capacity(members.len());
    for member in members {
        let Some(name) = member.name.strip_suffix(".npy") else {
            continue;
        };
        let contents = member_contents(bytes, &member)?;
        let array = read_npy(name, &contents).map_err(|error| {
            NpyError::at(
                member.local_header,
                format!("member `{}` {}", member.name, error.message),
            )
        })?;
        arrays.push(array);
    }
    if arrays.is_empty() {
        return Err(NpyError::at(0, "holds no `.npy` arrays"));
    }
    Ok(arrays)
}

/// An element type.
#[derive(Copy, Clone, Debug)]
enum Element {
    F8,
    F4,
    I8,
    I4,
    Bool,
}

impl Element {
    fn parse(descr: &str) -> Option<Element> {
        match descr {
            "<f8" => Some(Element::F8),
            "<f4" => Some(Element::F4),
            "<i8" => Some(Element::I8),
            "<i4" => Some(Element::I4),
            "|b1" => Some(Element::Bool),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Element::F8 | Element::I8 => 8,
            Element::F4 | Element::I4 => 4,
            Element::Bool => 1,
        }
    }

    /// The elements as `f64`; an error names the first element that cannot be represented.
    fn decode(self, body: &[u8]) -> Result<Vec<f64>, (usize, String)> {
        let data: Vec<f64> = match self {
            Element::F8 => body
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Element::F4 => body
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            Element::I8 => {
                let values: Vec<i64> = body
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect();
                if let Some(index) = values
                    .iter()
                    .position(|&v| (v as f64).abs() > EXACT_INTEGER)
                {
                    return Err((
                        index,
                        format!(
                            "holds the integer {} at element {index}, too large to be exact as a real number",
                            values[index]
                        ),
                    ));
                }
                values.into_iter().map(|v| v as f64).collect()
            }
            Element::I4 => body
                .chunks_exact(4)
                .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            Element::Bool => {
                if let Some(index) = body.iter().position(|&b| b > 1) {
                    return Err((
                        index,
                        format!("holds the byte {} in a boolean array", body[index]),
                    ));
                }
                body.iter().map(|&b| f64::from(b)).collect()
            }
        };
        Ok(data)
    }
}

/// The text after `'key':` in a header dictionary, trimmed.
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let found = quoted
        .iter()
        .find_map(|q| header.find(q.as_str()).map(|at| at + q.len()))?;
    let rest = header[found..].trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

/// A quoted string value of the header.
fn header_string(header: &str, key: &str) -> Option<String> {
    let value = header_value(header, key)?;
    let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &value[1..];
    inner.find(quote).map(|end| inner[..end].to_string())
}

/// The `shape` tuple of the header.
fn header_shape(header: &str) -> Option<Vec<usize>> {
    let value = header_value(header, "shape")?.strip_prefix('(')?;
    let inner = &value[..value.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.trim_end_matches('L').parse::<usize>().ok())
        .collect()
}

/// One member of a zip archive, from its central directory.
struct ZipMember {
    name: String,
    method: u16,
    compressed_size: usize,
    uncompressed_size: usize,
    local_header: usize,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// The members listed in the archive's central directory.
fn zip_members(bytes: &[u8]) -> Result<Vec<ZipMember>, NpyError> {
    const END_SIGNATURE: &[u8] = b"PK\x05\x06";
    const ENTRY_SIGNATURE: &[u8] = b"PK\x01\x02";
    let truncated = || NpyError::at(bytes.len(), "is not a complete zip archive");
    // The end record is the last 22 bytes, before a comment of at most 65,535 bytes.
    let search_from = bytes.len().saturating_sub(22 + 65_535);
    let end = bytes[search_from..]
        .windows(4)
        .rposition(|w| w == END_SIGNATURE)
        .map(|at| search_from + at)
        .ok_or_else(truncated)?;
    let entries = usize::from(read_u16(bytes, end + 10).ok_or_else(truncated)?);
    let directory = read_u32(bytes, end + 16).ok_or_else(truncated)?;
    if entries == 0xFFFF || directory == 0xFFFF_FFFF {
        return Err(NpyError::at(
            end,
            "is a zip64 archive (over 4 GB or 65,535 members), which is not read",
        ));
    }
    let mut members = Vec::with_capacity(entries);
    let mut at = directory;
    for _ in 0..entries {
        if bytes.get(at..at + 4) != Some(ENTRY_SIGNATURE) {
            return Err(NpyError::at(at, "has a damaged zip directory"));
        }
        let field = |offset: usize| read_u16(bytes, at + offset).ok_or_else(truncated);
        let word = |offset: usize| read_u32(bytes, at + offset).ok_or_else(truncated);
        let method = field(10)?;
        let compressed_size = word(20)?;
        let uncompressed_size = word(24)?;
        let name_len = usize::from(field(28)?);
        let extra_len = usize::from(field(30)?);
        let comment_len = usize::from(field(32)?);
        let local_header = word(42)?;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(truncated)?;
        members.push(ZipMember {
            name: String::from_utf8_lossy(name).into_owned(),
            method,
            compressed_size,
            uncompressed_size,
            local_header,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(members)
}

/// A member's bytes: borrowed from the archive when stored, inflated when deflated.
fn member_contents<'b>(
    bytes: &'b [u8],
    member: &ZipMember,
) -> Result<std::borrow::Cow<'b, [u8]>, NpyError> {
    let at = member.local_header;
    let truncated = || NpyError::at(at, format!("member `{}` is cut short", member.name));
    if bytes.get(at..at + 4) != Some(b"PK\x03\x04".as_slice()) {
        return Err(NpyError::at(
            at,
            format!("member `{}` has a damaged header", member.name),
        ));
    }
    let name_len = usize::from(read_u16(bytes, at + 26).ok_or_else(truncated)?);
    let extra_len = usize::from(read_u16(bytes, at + 28).ok_or_else(truncated)?);
    let start = at + 30 + name_len + extra_len;
    let raw = bytes
        .get(start..start + member.compressed_size)
        .ok_or_else(truncated)?;
    match member.method {
        0 => Ok(std::borrow::Cow::Borrowed(raw)),
        8 => {
            let inflated = miniz_oxide::inflate::decompress_to_vec_with_limit(
                raw,
                member.uncompressed_size,
            )
            .map_err(|_| {
                NpyError::at(start, format!("member `{}` does not inflate", member.name))
            })?;
            Ok(std::borrow::Cow::Owned(inflated))
        }
        other => Err(NpyError::at(
            at,
            format!(
                "member `{}` is compressed with zip method {other}; save with `np.savez` or `np.savez_compressed`",
                member.name
            ),
        )),
    }
}
