{{ config(alias='stripe_prices') }}
{{ quarantine_view('stripe', 'prices') }}
