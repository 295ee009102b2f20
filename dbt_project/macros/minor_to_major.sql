{#- Stripe-style integer minor units to a major-unit decimal, by currency:
    zero-decimal currencies (JPY, KRW, ...) as-is, three-decimal ones (BHD, KWD, ...) / 1000,
    the rest / 100 (ISK, HUF and TWD too): Stripe's own rules, docs.stripe.com/currencies. The lists
    are pipelines/currencies.py's STRIPE_ZERO_DECIMAL and STRIPE_THREE_DECIMAL (tests/unit/test_currencies.py). -#}
{% macro minor_to_major(amount, currency) -%}
    cast({{ amount }} as decimal(38, 6)) / case
        when upper({{ currency }}) in ('BIF', 'CLP', 'DJF', 'GNF', 'JPY', 'KMF', 'KRW', 'MGA', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') then 1
        when upper({{ currency }}) in ('BHD', 'JOD', 'KWD', 'OMR', 'TND') then 1000
        else 100
    end
{%- endmacro %}
