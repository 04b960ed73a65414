//! The words the rest of the helper speaks: kinds of GitLab token and the facts learnt about
//! one ([`token`]), what the store holds for a credential ([`stored_secret`]), and the
//! table of secret stores ([`backend`]). Plain
//! data and the rules that are functions of it alone; it imports nothing above it.

pub(crate) mod backend;
pub(crate) mod stored_secret;
pub(crate) mod token;

pub(crate) use token::{GitLabInfo, Resource, TokenKind};
