//! ZooKeeper's own shell, zkCli 3.8, against a ZooKeeper server, as a
//! specification of what a user sees.
//!
//! Each test is one scripted zkCli session (one client session: ephemerals,
//! watches and `addauth` last across its commands), run first against
//! upstream ZooKeeper 3.8 (which proves the expected transcript is
//! ZooKeeper's behaviour), then against Synod's ZooKeeper gateway, each on a
//! fresh server. Both must print exactly the expected transcript once
//! normalised by `normalize_zkcli`: zxids become `<zxid-N>` numbered by first
//! appearance (equal zxids stay equal, zxid 0x0 of the built-in nodes stays),
//! session ids `<session-N>`, times other than the epoch `<time>`; watch
//! notifications are listed, in order, after the commands (the client prints
//! them from another thread, so their place among the commands is a race).
//!
//! Transcript format: `$ <command>` then what zkCli printed for it (stdout
//! and stderr, in order); `[exit N]` at the end when zkCli's status is not 0.

use compat_tests::zkcli_transcript_on_both;

/// An ACL for user alice, password secret: the id is
/// `alice:base64(sha1("alice:secret"))`.
const ALICE_DIGEST: &str = "digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa";

/// `/`, `/zookeeper`, `/zookeeper/config` and `/zookeeper/quota` exist from
/// the start with zxid 0 and time 0; the parents' cversion counts child
/// creates and deletes, and the built-in children were never "created"
/// (`/` starts at -1, `/zookeeper` at -2); `/zookeeper/config` is read-only
/// with aclVersion -1.
#[test]
fn a_fresh_server_has_only_the_zookeeper_system_tree() {
    zkcli_transcript_on_both(
        r#"
$ stat /
cZxid = 0x0
ctime = Thu Jan 01 00:00:00 UTC 1970
mZxid = 0x0
mtime = Thu Jan 01 00:00:00 UTC 1970
pZxid = 0x0
cversion = -1
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 1
$ ls /
[zookeeper]
$ stat /zookeeper
cZxid = 0x0
ctime = Thu Jan 01 00:00:00 UTC 1970
mZxid = 0x0
mtime = Thu Jan 01 00:00:00 UTC 1970
pZxid = 0x0
cversion = -2
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 2
$ ls /zookeeper
[config, quota]
$ get -s /zookeeper/config

cZxid = 0x0
ctime = Thu Jan 01 00:00:00 UTC 1970
mZxid = 0x0
mtime = Thu Jan 01 00:00:00 UTC 1970
pZxid = 0x0
cversion = 0
dataVersion = 0
aclVersion = -1
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
$ ls /zookeeper/quota
[]
$ getAcl /
'world,'anyone
: cdrwa
$ getAcl /zookeeper
'world,'anyone
: cdrwa
$ getAcl /zookeeper/config
'world,'anyone
: r
$ getAcl /zookeeper/quota
'world,'anyone
: cdrwa
$ create /x
Created /x
$ stat /
cZxid = 0x0
ctime = Thu Jan 01 00:00:00 UTC 1970
mZxid = 0x0
mtime = Thu Jan 01 00:00:00 UTC 1970
pZxid = <zxid-1>
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 2
$ delete /x
$ stat /
cZxid = 0x0
ctime = Thu Jan 01 00:00:00 UTC 1970
mZxid = 0x0
mtime = Thu Jan 01 00:00:00 UTC 1970
pZxid = <zxid-2>
cversion = 1
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 1
--- watch notifications ---
WatchedEvent state:SyncConnected type:None path:null
"#,
        &[
            "stat /",
            "ls /",
            "stat /zookeeper",
            "ls /zookeeper",
            "get -s /zookeeper/config",
            "ls /zookeeper/quota",
            "getAcl /",
            "getAcl /zookeeper",
            "getAcl /zookeeper/config",
            "getAcl /zookeeper/quota",
            "create /x",
            "stat /",
            "delete /x",
            "stat /",
        ],
    );
}

/// Sequential names take the parent's create counter (`%010d`), shared by
/// all creates under the parent; `ls -R` lists breadth first.
#[test]
fn create_get_set_ls_stat_and_delete_show_versions_and_children() {
    zkcli_transcript_on_both(
        r#"
$ create /app
Created /app
$ create /app/cfg v1
Created /app/cfg
$ get -s /app/cfg
v1
cZxid = <zxid-1>
ctime = <time>
mZxid = <zxid-1>
mtime = <time>
pZxid = <zxid-1>
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 2
numChildren = 0
$ set /app/cfg v2
$ set -s /app/cfg v3
cZxid = <zxid-1>
ctime = <time>
mZxid = <zxid-2>
mtime = <time>
pZxid = <zxid-1>
cversion = 0
dataVersion = 2
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 2
numChildren = 0
$ get /app/cfg
v3
$ create -s /app/seq- s
Created /app/seq-0000000001
$ create -s -e /app/worker- w
Created /app/worker-0000000002
$ create -e /app/eph e
Created /app/eph
$ ls /app
[cfg, eph, seq-0000000001, worker-0000000002]
$ ls -s /app
[cfg, eph, seq-0000000001, worker-0000000002]
cZxid = <zxid-3>
ctime = <time>
mZxid = <zxid-3>
mtime = <time>
pZxid = <zxid-4>
cversion = 4
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 4
$ stat /app
cZxid = <zxid-3>
ctime = <time>
mZxid = <zxid-3>
mtime = <time>
pZxid = <zxid-4>
cversion = 4
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 4
$ stat /app/eph
cZxid = <zxid-4>
ctime = <time>
mZxid = <zxid-4>
mtime = <time>
pZxid = <zxid-4>
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = <session-1>
dataLength = 1
numChildren = 0
$ get -s /app/worker-0000000002
w
cZxid = <zxid-5>
ctime = <time>
mZxid = <zxid-5>
mtime = <time>
pZxid = <zxid-5>
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = <session-1>
dataLength = 1
numChildren = 0
$ delete /app/cfg
$ ls /app
[eph, seq-0000000001, worker-0000000002]
$ stat /app
cZxid = <zxid-3>
ctime = <time>
mZxid = <zxid-3>
mtime = <time>
pZxid = <zxid-6>
cversion = 5
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 3
$ create /app/sub
Created /app/sub
$ create /app/sub/a 1
Created /app/sub/a
$ create /app/sub/b 2
Created /app/sub/b
$ ls -R /app
/app
/app/eph
/app/seq-0000000001
/app/sub
/app/worker-0000000002
/app/sub/a
/app/sub/b
$ getEphemerals /app
[/app/eph, /app/worker-0000000002]
$ getAllChildrenNumber /app
6
$ deleteall /app
$ ls /
[zookeeper]
$ stat /
cZxid = 0x0
ctime = Thu Jan 01 00:00:00 UTC 1970
mZxid = 0x0
mtime = Thu Jan 01 00:00:00 UTC 1970
pZxid = <zxid-7>
cversion = 1
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 1
--- watch notifications ---
WatchedEvent state:SyncConnected type:None path:null
"#,
        &[
            "create /app",
            "create /app/cfg v1",
            "get -s /app/cfg",
            "set /app/cfg v2",
            "set -s /app/cfg v3",
            "get /app/cfg",
            "create -s /app/seq- s",
            "create -s -e /app/worker- w",
            "create -e /app/eph e",
            "ls /app",
            "ls -s /app",
            "stat /app",
            "stat /app/eph",
            "get -s /app/worker-0000000002",
            "delete /app/cfg",
            "ls /app",
            "stat /app",
            "create /app/sub",
            "create /app/sub/a 1",
            "create /app/sub/b 2",
            "ls -R /app",
            "getEphemerals /app",
            "getAllChildrenNumber /app",
            "deleteall /app",
            "ls /",
            "stat /",
        ],
    );
}

#[test]
fn watches_set_by_ls_get_and_stat_fire_once_with_their_event_type_and_path() {
    zkcli_transcript_on_both(
        r#"
$ create /w
Created /w
$ ls -w /w
[]
$ create /w/c1 x
Created /w/c1
$ create /w/c2 y
Created /w/c2
$ get -w /w/c1
x
$ set /w/c1 z
$ set /w/c1 zz
$ stat -w /w/new
Node does not exist: /w/new
$ create /w/new n
Created /w/new
$ get -w /w/c2
y
$ delete /w/c2
$ ls -w /w
[c1, new]
$ delete /w/c1
$ ls /w
[new]
--- watch notifications ---
WatchedEvent state:SyncConnected type:None path:null
WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/w
WatchedEvent state:SyncConnected type:NodeDataChanged path:/w/c1
WatchedEvent state:SyncConnected type:NodeCreated path:/w/new
WatchedEvent state:SyncConnected type:NodeDeleted path:/w/c2
WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/w
"#,
        &[
            "create /w",
            "ls -w /w",
            "create /w/c1 x",
            "create /w/c2 y",
            "get -w /w/c1",
            "set /w/c1 z",
            "set /w/c1 zz",
            "stat -w /w/new",
            "create /w/new n",
            "get -w /w/c2",
            "delete /w/c2",
            "ls -w /w",
            "delete /w/c1",
            "ls /w",
        ],
    );
}

/// Without a matching id even getAcl is refused; `addauth` adds the digest
/// id to the session (and `whoami` shows the user name only); `auth::`
/// stands for the session's authenticated ids.
#[test]
fn acls_refuse_unauthenticated_sessions_until_addauth_and_show_their_ids() {
    zkcli_transcript_on_both(
        r#"
$ create /secure top
Created /secure
$ getAcl /secure
'world,'anyone
: cdrwa
$ setAcl /secure digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa
$ getAcl /secure
Insufficient permission : /secure
$ get /secure
Insufficient permission : /secure
$ set /secure nope
Insufficient permission : /secure
$ addauth digest alice:secret
$ get /secure
top
$ getAcl -s /secure
'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=
: cdrwa
cZxid = <zxid-1>
ctime = <time>
mZxid = <zxid-1>
mtime = <time>
pZxid = <zxid-1>
cversion = 0
dataVersion = 0
aclVersion = 1
ephemeralOwner = 0x0
dataLength = 3
numChildren = 0
$ setAcl /secure world:anyone:r
$ getAcl /secure
'world,'anyone
: r
$ set /secure x
Insufficient permission : /secure
$ get /secure
top
$ create /open o
Created /open
$ setAcl -s /open world:anyone:cdrwa
cZxid = <zxid-2>
ctime = <time>
mZxid = <zxid-2>
mtime = <time>
pZxid = <zxid-2>
cversion = 0
dataVersion = 0
aclVersion = 1
ephemeralOwner = 0x0
dataLength = 1
numChildren = 0
$ setAcl /open auth::cdrwa
$ getAcl /open
'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=
: cdrwa
$ setAcl /open ip:127.0.0.1:rw
$ getAcl /open
'ip,'127.0.0.1
: rw
$ whoami
Auth scheme: User
digest: alice
ip: 127.0.0.1
--- watch notifications ---
WatchedEvent state:SyncConnected type:None path:null
"#,
        &[
            "create /secure top",
            "getAcl /secure",
            &format!("setAcl /secure {ALICE_DIGEST}"),
            "getAcl /secure",
            "get /secure",
            "set /secure nope",
            "addauth digest alice:secret",
            "get /secure",
            "getAcl -s /secure",
            "setAcl /secure world:anyone:r",
            "getAcl /secure",
            "set /secure x",
            "get /secure",
            "create /open o",
            "setAcl -s /open world:anyone:cdrwa",
            "setAcl /open auth::cdrwa",
            "getAcl /open",
            "setAcl /open ip:127.0.0.1:rw",
            "getAcl /open",
            "whoami",
        ],
    );
}

/// The error texts zkCli prints come from the server's error codes:
/// NodeExists, NotEmpty, NoNode, BadVersion, NoChildrenForEphemerals.
#[test]
fn failing_commands_print_zookeepers_error_texts() {
    zkcli_transcript_on_both(
        r#"
$ create /exists a
Created /exists
$ create /exists b
Node already exists: /exists
$ create /exists/kid k
Created /exists/kid
$ delete /exists
Node not empty: /exists
$ get /missing
Node does not exist: /missing
$ set -v 7 /exists c
version No is not valid : /exists
$ delete -v 3 /exists/kid
version No is not valid : /exists/kid
$ create /missing/child
Node does not exist: /missing/child
$ create -e /eph
Created /eph
$ create /eph/child
Ephemerals cannot have children: /eph/child
$ ls /missing
Node does not exist: /missing
$ stat /missing
Node does not exist: /missing
$ set /missing x
Node does not exist: /missing
$ delete /missing
Node does not exist: /missing
$ getAcl /missing
Node does not exist: /missing
$ setAcl /missing world:anyone:r
Node does not exist: /missing
$ deleteall /missing
Node does not exist: /missing
$ get /exists
a
--- watch notifications ---
WatchedEvent state:SyncConnected type:None path:null
"#,
        &[
            "create /exists a",
            "create /exists b",
            "create /exists/kid k",
            "delete /exists",
            "get /missing",
            "set -v 7 /exists c",
            "delete -v 3 /exists/kid",
            "create /missing/child",
            "create -e /eph",
            "create /eph/child",
            "ls /missing",
            "stat /missing",
            "set /missing x",
            "delete /missing",
            "getAcl /missing",
            "setAcl /missing world:anyone:r",
            "deleteall /missing",
            "get /exists",
        ],
    );
}
