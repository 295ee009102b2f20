{{ config(alias='stripe_discounts') }}
{{ quarantine_view('stripe', 'discounts') }}
