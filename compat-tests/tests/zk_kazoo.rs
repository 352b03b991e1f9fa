//! kazoo, the Python ZooKeeper client, against a ZooKeeper server: its API
//! and the recipes it ships, as a specification.
//!
//! Each test runs one script of `compat-tests/zk/` (which asserts the
//! behaviour itself: exit 0 = pass, else it prints the failing check) first
//! against upstream ZooKeeper 3.8 (which proves the script's expectations
//! are ZooKeeper's behaviour), then against Synod's ZooKeeper gateway, each
//! on a fresh server. Every wait in a script is bounded (10 s; a watchdog
//! ends a script after 90 s with all threads' stacks).

use compat_tests::zk_on_both;
use compat_tests::zookeeper::assert_kazoo_script_passes;

fn script_passes_on_both(script: &str) {
    zk_on_both(|target| assert_kazoo_script_passes(target, script));
}

#[test]
fn crud_returns_data_stats_versions_and_nonode_nodeexists_badversion_notempty() {
    script_passes_on_both("crud");
}

#[test]
fn data_exists_and_children_watches_fire_once_with_their_event_type_and_path() {
    script_passes_on_both("watches");
}

#[test]
fn transactions_apply_at_one_zxid_or_not_at_all_with_per_op_results() {
    script_passes_on_both("transactions");
}

#[test]
fn ephemerals_belong_to_their_session_and_vanish_with_it_firing_watches() {
    script_passes_on_both("ephemerals");
}

#[test]
fn sequential_names_count_every_create_under_the_parent_as_ten_digits() {
    script_passes_on_both("sequence");
}

#[test]
fn lock_recipe_gives_mutual_exclusion_across_clients() {
    script_passes_on_both("recipe_lock");
}

#[test]
fn election_recipe_has_one_leader_at_a_time_in_order() {
    script_passes_on_both("recipe_election");
}

#[test]
fn barrier_and_double_barrier_recipes_hold_until_released_or_all_arrive() {
    script_passes_on_both("recipe_barrier");
}

#[test]
fn queue_and_locking_queue_recipes_hand_each_item_out_once() {
    script_passes_on_both("recipe_queue");
}

#[test]
fn acls_check_each_permission_and_digest_auth() {
    script_passes_on_both("acl");
}

#[test]
fn sessions_negotiate_timeouts_resume_by_id_and_expire_with_their_ephemerals() {
    script_passes_on_both("session");
}

#[test]
fn containers_and_ttl_nodes_are_reaped_once_empty() {
    script_passes_on_both("containers_ttl");
}
