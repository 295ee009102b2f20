"""Billing a customer: invoices with discounts and tax, finalization, charges, retries and dunning."""

from __future__ import annotations

from pipelines.sandbox.simulation.saas.catalog import Coupon
from pipelines.sandbox.simulation.saas.objects import DAY, HOUR, Invoice, Line, Sub, base62, round_half_up
from pipelines.sandbox.simulation.saas.walk import Walk

FINALIZE_DELAY = HOUR  # Stripe finalizes renewal invoices about an hour after creating them
PAYMENT_DELAY = 5  # seconds from finalization to the charge's outcome
RETRY_DAYS = (3, 5, 7)  # smart-retry schedule after a failed renewal charge (days after the previous)


class Billing(Walk):
    """The invoices of a customer's walk. How a subscription ends is the life's (`CustomerLife._end_now`)."""

    def _period_lines(self, sub: Sub, previous: tuple[int, int] | None) -> list[Line]:
        """Lines of a period's invoice: licensed items in advance, metered usage of `previous` in arrears."""
        lines = []
        for item in sub.items:
            price = item.price
            if price.metered:
                usage = 0 if previous is None else self._usage()
                start, end = previous or (sub.period_start, sub.period_start)
                lines.append(Line("", usage * price.unit_amount, usage, price, start, end, False, item.id,
                                  f"{usage} × {price.product_name} (per 1,000 calls)"))
            else:
                lines.append(Line("", price.unit_amount * item.quantity, item.quantity, price,
                                  sub.period_start, sub.period_end, False, item.id,
                                  f"{item.quantity} × {price.product_name} ({price.body['nickname']})"))
        return lines

    def _usage(self) -> int:
        return int(self.rng.lognormvariate(4.0, 0.8))

    def _invoice(self, sub: Sub, reason: str, lines: list[Line], period_start: int, period_end: int,
                 proration_date: int | None = None) -> Invoice:
        """Create a draft invoice (with discounts and tax applied) and make it the latest one."""
        cus = self.customer
        invoice_key = sub.id[4:] + base62(sub.invoice_count, 3)
        invoice_id = "in_" + invoice_key
        sub.invoice_count += 1
        for index, line in enumerate(lines):
            line.id = f"il_{invoice_key}{base62(index, 2)}"
        discount = sub.discount if reason != "subscription_update" else None
        if discount is not None and discount.end is not None and self.now >= discount.end:
            discount = None
        if discount is not None:
            self._apply_discount(discount.coupon, [line for line in lines if not line.proration])
        if cus.tax_rate is not None:
            for line in lines:
                line.tax = round_half_up((line.amount - line.discount) * cus.tax_rate[1], 100)
        invoice = Invoice(invoice_id, cus, sub, self.now, reason, period_start, period_end, lines,
                          discount if discount and any(line.discount for line in lines) else None,
                          cus.tax_rate, proration_date)
        invoice.compute()
        invoice.amount_due, invoice.email = invoice.total, cus.email
        self.invoices.append(invoice)
        self._touch("invoice", invoice, "invoice.created", created=True)
        self._touch("subscription", sub, None)
        sub.latest_invoice = invoice_id
        return invoice

    @staticmethod
    def _apply_discount(coupon: Coupon, lines: list[Line]) -> None:
        """Spread a coupon over the discountable lines, in proportion to their amounts."""
        base = sum(line.amount for line in lines)
        if base <= 0:
            return
        if coupon.percent_off is not None:
            total = round_half_up(base * int(coupon.percent_off * 100), 10000)
        else:
            total = min(coupon.amount_off, base)
        left = total
        for line in lines[1:]:
            line.discount = total * line.amount // base
            left -= line.discount
        lines[0].discount = left

    def _finalize(self, invoice: Invoice, *, may_fail: bool = True) -> None:
        """Finalize now (applying customer credit), then charge it a few seconds later.

        Args:
            may_fail: whether the first charge can fail (not at signup or on upgrades).
        """
        cus = self.customer
        balance = min(0, invoice.total + cus.balance)
        self._touch("invoice", invoice, "invoice.finalized")
        self._touch("customer", cus, "customer.updated" if balance != cus.balance else None)
        invoice.status, invoice.finalized_at, invoice.email = "open", self.now, cus.email
        invoice.number = f"{cus.invoice_prefix}-{cus.next_invoice_sequence:04d}"
        cus.next_invoice_sequence += 1
        invoice.starting_balance = cus.balance
        invoice.amount_due = max(0, invoice.total + cus.balance)
        invoice.ending_balance = cus.balance = balance
        if invoice.amount_due == 0:
            self._touch("invoice", invoice, "invoice.paid")
            invoice.status, invoice.paid_at = "paid", self.now
            return
        # Weekly periods are shorter than the retry schedule, so weekly charges never fail here.
        weekly = invoice.sub.price.interval == "week"
        if may_fail and not weekly and self.rng.random() < self.rates.fail_per_renewal:
            draw = self.rng.random()
            if draw < self.rates.fail_recover:
                invoice.failure = ("recover", 2 + self.rng.randrange(len(RETRY_DAYS)))
            elif draw < self.rates.fail_recover + self.rates.fail_unpaid:
                invoice.failure = ("unpaid", 0)
            else:
                invoice.failure = ("cancel", 0)
        self._schedule(self.now + PAYMENT_DELAY, self._charge, invoice)

    def _finalize_later(self, invoice: Invoice) -> None:
        if invoice.status == "draft":
            self._finalize(invoice)

    def _charge(self, invoice: Invoice) -> None:
        if invoice.status != "open":
            return
        sub, cus = invoice.sub, self.customer
        invoice.attempt_count += 1
        failure = invoice.failure
        succeeds = failure is None or (failure[0] == "recover" and invoice.attempt_count >= failure[1])
        if succeeds:
            self._touch("invoice", invoice, "invoice.paid")
            invoice.status, invoice.paid_at, invoice.amount_paid = "paid", self.now, invoice.amount_due
            invoice.next_payment_attempt = None
            if sub.status == "past_due":
                self._touch("subscription", sub, "customer.subscription.updated")
                sub.status = "active"
            if cus.delinquent:
                self._touch("customer", cus, "customer.updated")
                cus.delinquent = False
            return
        self._touch("invoice", invoice, "invoice.payment_failed")
        if invoice.attempt_count <= len(RETRY_DAYS):
            invoice.next_payment_attempt = self.now + RETRY_DAYS[invoice.attempt_count - 1] * DAY
            self._schedule(invoice.next_payment_attempt, self._charge, invoice)
            if sub.status == "active":
                self._touch("subscription", sub, "customer.subscription.updated")
                sub.status = "past_due"
            if not cus.delinquent:
                self._touch("customer", cus, "customer.updated")
                cus.delinquent = True
            return
        invoice.next_payment_attempt = None  # retries exhausted
        if failure[0] == "unpaid":
            self._touch("subscription", sub, "customer.subscription.updated")
            sub.status = "unpaid"
            give_up = self.now + self.rng.randrange(15 * DAY, 45 * DAY)
            self._schedule(give_up, self._cancel_unpaid, sub, invoice)
            return
        self._touch("invoice", invoice, "invoice.marked_uncollectible")
        invoice.status, invoice.uncollectible_at = "uncollectible", self.now
        self._end_now(sub, "payment_failed")

    def _cancel_unpaid(self, sub: Sub, invoice: Invoice) -> None:
        """The owner gives up on an unpaid subscription: cancel it and void its open invoice."""
        if sub.status != "unpaid":
            return
        self._touch("invoice", invoice, "invoice.voided")
        invoice.status, invoice.voided_at = "void", self.now
        self._end_now(sub, "payment_failed")

    def _end_now(self, sub: Sub, reason: str, *, request: bool = False) -> None:
        raise NotImplementedError  # CustomerLife ends subscriptions
