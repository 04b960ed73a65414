//! One module per command. Commands parse nothing themselves (that is `cli`) and print
//! nothing but their result, so each can be read top to bottom as the policy it implements.

pub mod completions;
pub mod configure_docker;
pub mod doctor;
mod fleet_view;
pub mod login;
pub mod logout;
pub mod man;
pub mod oauth_login;
pub mod rotate;
pub mod status;
pub mod verbs;
