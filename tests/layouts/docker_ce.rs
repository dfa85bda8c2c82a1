//! Docker CE's packaging (docker-ce, containerd.io) in the sid guest:
//! containerd.io's config.toml (no version line, the CRI plugin disabled)
//! and dockerd handed the system containerd with `--containerd=`. With the
//! containerd image store both trees are backed up, restored after a wipe
//! and bind-moved, and the engine comes back on them after a reboot.

use crate::engine_move::{guest_with, state};
use crate::util::{LoopFs, Scratch, require_root};

#[test]
fn docker_ce_config_backup_wipe_restore_bind_move_reboot() {
    require_root();
    let s = Scratch::new("sid-ce");
    let disk = LoopFs::new(&s, "ext4", "2G");
    let mut h = guest_with(&s, "sidce", &disk.mnt, &["ce"]);
    let st: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json status")).unwrap();
    let layout = &st["layout"]["layout"];
    assert_eq!(
        (layout["kind"].as_str(), layout["containerd"].as_str()),
        (Some("system-service"), Some("/run/containerd/containerd.sock")),
        "{st}"
    );
    let config = h.ok("cat /etc/containerd/config.toml");
    assert!(config.contains("disabled_plugins = [\"cri\"]"), "{config}");
    let before = state(&h);

    h.ok("dockroot -q backup -o /root/a.tar.zst");
    assert_eq!(state(&h), before, "after the backup");
    h.ok("systemctl stop docker.socket docker.service containerd.service && rm -rf /var/lib/docker /var/lib/containerd");
    h.ok("dockroot -q restore /root/a.tar.zst --yes");
    assert_eq!(state(&h), before, "after the restore");

    h.ok("dockroot -q move --method bind --to /data/docker --yes");
    assert_eq!(state(&h), before, "after the move");
    h.reboot();
    assert_eq!(state(&h), before, "after the reboot");
    h.ok("dockroot -q finalize --yes");
    assert_eq!(h.ok("cat /etc/containerd/config.toml"), config, "a bind move leaves config.toml as it was");
}
