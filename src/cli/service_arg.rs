//! `--service` as clap parses it. `pidfile:PATH` carries a path, which a
//! `ValueEnum` cannot, so this is a small value parser that lists the choices
//! in `--help`, rejects a typo at parse time and converts to the engine's
//! [`ServiceKind`] here, so the engine never sees clap.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};

use dockroot::service::ServiceKind;

/// One `--service` choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceArg {
    Auto,
    Systemd,
    Sysv,
    Openrc,
    Pidfile(PathBuf),
    Snap,
    /// A user's rootless Docker (set by `--user`, or `user:NAME`).
    User(String),
    None,
}

impl From<&ServiceArg> for ServiceKind {
    fn from(s: &ServiceArg) -> ServiceKind {
        match s {
            ServiceArg::Auto => ServiceKind::Auto,
            ServiceArg::Systemd => ServiceKind::Systemd,
            ServiceArg::Sysv => ServiceKind::Sysv,
            ServiceArg::Openrc => ServiceKind::OpenRc,
            ServiceArg::Pidfile(p) => ServiceKind::Pidfile(p.clone()),
            ServiceArg::Snap => ServiceKind::Snap,
            ServiceArg::User(u) => ServiceKind::User(u.clone()),
            ServiceArg::None => ServiceKind::None,
        }
    }
}

impl std::fmt::Display for ServiceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        ServiceKind::from(self).fmt(f)
    }
}

/// The value parser behind `--service`.
#[derive(Clone, Copy)]
pub struct ServiceParser;

const CHOICES: [(&str, &str); 8] = [
    ("auto", "detect the service manager"),
    ("systemd", "systemctl stop/start docker.socket and docker.service"),
    ("sysv", "service docker stop/start"),
    ("openrc", "rc-service docker stop/start"),
    ("pidfile:PATH", "a daemon known by its pidfile: SIGTERM, then the same command line again"),
    ("snap", "the snap's dockerd: systemctl stop/start snap.docker.dockerd.service"),
    ("user:NAME", "rootless Docker: systemctl --user --machine=NAME@ stop/start docker.service"),
    ("none", "start and stop nothing; refuse if Docker runs"),
];

impl TypedValueParser for ServiceParser {
    type Value = ServiceArg;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<ServiceArg, clap::Error> {
        let s = value.to_string_lossy();
        let parsed = match s.as_ref() {
            "auto" => Some(ServiceArg::Auto),
            "systemd" => Some(ServiceArg::Systemd),
            "sysv" => Some(ServiceArg::Sysv),
            "openrc" => Some(ServiceArg::Openrc),
            "none" => Some(ServiceArg::None),
            "snap" => Some(ServiceArg::Snap),
            _ => match (s.strip_prefix("pidfile:"), s.strip_prefix("user:")) {
                (Some(p), _) if !p.is_empty() => Some(ServiceArg::Pidfile(p.into())),
                (_, Some(u)) if !u.is_empty() => Some(ServiceArg::User(u.into())),
                _ => None,
            },
        };
        parsed.ok_or_else(|| {
            let mut e = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                e.insert(ContextKind::InvalidArg, ContextValue::String(arg.to_string()));
            }
            e.insert(ContextKind::InvalidValue, ContextValue::String(s.into_owned()));
            e.insert(ContextKind::ValidValue, ContextValue::Strings(CHOICES.iter().map(|(n, _)| n.to_string()).collect()));
            e
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(CHOICES.iter().map(|(n, h)| PossibleValue::new(*n).help(*h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[arg(long, value_parser = ServiceParser, default_value = "auto")]
        service: ServiceArg,
    }

    #[test]
    fn parses_every_choice_and_converts() {
        let p = |v: &str| T::try_parse_from(["t", "--service", v]).map(|t| ServiceKind::from(&t.service));
        assert_eq!(p("auto").unwrap(), ServiceKind::Auto);
        assert_eq!(p("openrc").unwrap(), ServiceKind::OpenRc);
        assert_eq!(p("pidfile:/run/d.pid").unwrap(), ServiceKind::Pidfile("/run/d.pid".into()));
        assert_eq!(p("none").unwrap(), ServiceKind::None);
        assert_eq!(p("snap").unwrap(), ServiceKind::Snap);
    }

    #[test]
    fn typo_fails_at_parse_time_listing_the_choices() {
        for bad in ["systemdd", "pidfile:", "pidfile"] {
            let e = T::try_parse_from(["t", "--service", bad]).err().expect(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidValue);
            let text = e.to_string();
            assert!(text.contains("pidfile:PATH") && text.contains("openrc"), "{text}");
        }
    }
}
