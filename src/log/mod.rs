//! The contract between the login shell and the accounting: the lines that reach the log and
//! what they mean.
//!
//! - [`wrapper`]: the wrapper's own lines ([`wrapper::WrapperLine`]), written by the shell and
//!   read by the ingest.
//! - [`fields`]: their `key=value` escaping.
//! - [`parse`]: syslog lines, and sftp-server's, internal-sftp's and sshd's messages.
//! - [`transfer`]: what a closed file counts as (upload, download, complete).

// The contract serves both wings: the login shell built alone reads only its part of it.
#![cfg_attr(not(feature = "accounting"), allow(dead_code))]

/// An enum stored and logged as fixed words: `as_str` and `parse` are inverse by construction.
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            // Not every enum's whole list is read outside the tests.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The words, in the order of [`Self::ALL`].
            #[allow(dead_code)]
            pub(crate) const WORDS: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

/// Deserializes a [`text_enum!`] from its word (a config value), refusing any other word as
/// serde's own enums do.
macro_rules! deserialize_words {
    ($($name:ident),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&word)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&word, $name::WORDS))
            }
        }
    )+};
}
pub(crate) use deserialize_words;

pub(crate) mod fields;
pub mod parse;
pub(crate) mod reach;
pub(crate) mod transfer;
pub mod wrapper;
