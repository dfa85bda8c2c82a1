//! Socket discovery against a real dockerd: a private daemon started with
//! `-H unix://DIR/sock` (scripts/lib/dockerd.sh) is found from its own
//! command line in /proc, with neither `--docker-socket` nor `DOCKER_HOST`.

use std::process::Command;

use crate::util::*;

#[test]
fn a_daemon_started_with_dash_h_is_found_without_flags() {
    require_root();
    let dir = tempfile::Builder::new().prefix("dr-sock").tempdir_in("/tmp").unwrap();
    let d = dir.path();
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("start").arg(d));
    struct Stop<'a>(&'a std::path::Path);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(self.0).status();
        }
    }
    let _stop = Stop(d);
    let s = Scratch::new("sock");
    let status = |extra: &[&str]| {
        let mut c = Command::new(bin());
        c.env_remove("DOCKER_HOST").env_remove("DOCKER_CONTEXT").env("DOCKER_CONFIG", s.join("no-cli-config"));
        c.args(extra).args(["status", "--service", "none", "--data-root"]).arg(d.join("root"));
        c.arg("--daemon-config").arg(d.join("daemon.json")).arg("--state-dir").arg(s.join("st")).arg("--fstab").arg(s.join("fstab"));
        run(&mut c)
    };
    let out = status(&["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let pid = std::fs::read_to_string(d.join("pid")).unwrap().trim().parse::<u64>().unwrap();
    assert_eq!(v["docker_socket"]["path"], d.join("sock").to_str().unwrap(), "{v}");
    assert_eq!(v["docker_socket"]["source"]["kind"], "running-daemon", "{v}");
    assert_eq!(v["docker_socket"]["source"]["pid"], pid, "{v}");
    assert_eq!(v["daemon_running"], true, "the daemon did not answer on the discovered socket: {v}");
    let human = String::from_utf8(status(&[]).stdout).unwrap();
    let line = format!("docker socket:    {} (from -H of the running dockerd, pid {pid})", d.join("sock").display());
    assert!(human.contains(&line), "no `{line}` in:\n{human}");

    // The flag still wins, and says so.
    let out = status(&["--json", "--docker-socket", "/nonexistent/x.sock"]);
    let v = json(&out);
    assert_eq!(
        (&v["docker_socket"]["path"], &v["docker_socket"]["source"]["kind"]),
        (&"/nonexistent/x.sock".into(), &"flag".into()),
        "{v}"
    );
    assert_eq!(v["daemon_running"], false, "{v}");
}
