{{ config(alias='stripe_coupons') }}
{{ quarantine_view('stripe', 'coupons') }}
