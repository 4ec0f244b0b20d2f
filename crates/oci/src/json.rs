//! One serde_json serializer for both layouts. A config.json is written compact (the state
//! directory's copy) and pretty (`spec`, the pods' bundles); with serde_json's two formatter
//! types every `Serialize` impl of the spec would be compiled twice, and the spec's are the
//! largest in the binary. [`Layout`] picks the layout at run time, so each impl is compiled
//! once: the bytes are serde_json's own (`to_vec` or `to_vec_pretty`).

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// serde_json's compact or pretty (two-space) layout.
enum Layout {
    Compact,
    Pretty(PrettyFormatter<'static>),
}

macro_rules! either {
    ($self:ident, $f:ident($($arg:ident),*)) => {
        match $self {
            Layout::Compact => CompactFormatter.$f($($arg),*),
            Layout::Pretty(p) => p.$f($($arg),*),
        }
    };
}

// The methods PrettyFormatter overrides; the rest are the trait's (CompactFormatter's) own.
impl Formatter for Layout {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, begin_array(w))
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, end_array(w))
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        either!(self, begin_array_value(w, first))
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, end_array_value(w))
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, begin_object(w))
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, end_object(w))
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        either!(self, begin_object_key(w, first))
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, begin_object_value(w))
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, end_object_value(w))
    }
}

/// `serde_json::to_vec` (`pretty` false) or `serde_json::to_vec_pretty`, byte for byte.
pub fn to_vec<T: Serialize + ?Sized>(value: &T, pretty: bool) -> serde_json::Result<Vec<u8>> {
    let layout = if pretty {
        Layout::Pretty(PrettyFormatter::new())
    } else {
        Layout::Compact
    };
    let mut out = Vec::with_capacity(256);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, layout,
    ))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_as_serde_json() {
        let spec = crate::spec_template::default_spec(false);
        assert_eq!(
            to_vec(&spec, false).unwrap(),
            serde_json::to_vec(&spec).unwrap()
        );
        assert_eq!(
            to_vec(&spec, true).unwrap(),
            serde_json::to_vec_pretty(&spec).unwrap()
        );
        let v = serde_json::json!({"a": [], "b": {}, "c": [1, {"d": [true, null]}], "e": "\u{1}"});
        assert_eq!(to_vec(&v, false).unwrap(), serde_json::to_vec(&v).unwrap());
        assert_eq!(
            to_vec(&v, true).unwrap(),
            serde_json::to_vec_pretty(&v).unwrap()
        );
    }
}
