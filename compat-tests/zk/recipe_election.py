"""kazoo's Election recipe: the first contender leads; the next leads once
the leader's function returns; contenders are listed in order."""

import threading

from zkcommon import WAIT, check, client, eq, main, wait_until


def body():
    a, b = client(), client()
    ea, eb = a.Election("/election", "a"), b.Election("/election", "b")
    leaders = []
    a_may_resign = threading.Event()

    def lead_a():
        leaders.append("a")
        a_may_resign.wait(WAIT)

    def lead_b():
        leaders.append("b")

    ta = threading.Thread(target=ea.run, args=(lead_a,), daemon=True)
    ta.start()
    wait_until(lambda: leaders == ["a"], "a to lead")
    tb = threading.Thread(target=eb.run, args=(lead_b,), daemon=True)
    tb.start()
    wait_until(lambda: ea.contenders() == ["a", "b"], "b to join the election")
    eq(leaders, ["a"], "only a leads while a runs")

    a_may_resign.set()
    ta.join(WAIT)
    check(not ta.is_alive(), "a's run returned")
    wait_until(lambda: leaders == ["a", "b"], "b to lead after a")
    tb.join(WAIT)
    check(not tb.is_alive(), "b's run returned")
    eq(ea.contenders(), [], "no contenders left")

    # A cancelled contender never leads.
    c = client()
    ec = c.Election("/election2", "c")
    ed = a.Election("/election2", "d")
    c_leads = threading.Event()
    tc = threading.Thread(target=ec.run, args=(lambda: c_leads.wait(WAIT),), daemon=True)
    tc.start()
    wait_until(lambda: ec.contenders() == ["c"], "c to lead")
    td_led = []
    td = threading.Thread(target=ed.run, args=(lambda: td_led.append("d"),), daemon=True)
    td.start()
    wait_until(lambda: ec.contenders() == ["c", "d"], "d to join")
    ed.cancel()
    td.join(WAIT)
    check(not td.is_alive(), "d's run returned after cancel")
    eq(td_led, [], "a cancelled contender never leads")
    c_leads.set()
    tc.join(WAIT)


main(body)
