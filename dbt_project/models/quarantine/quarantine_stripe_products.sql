{{ config(alias='stripe_products') }}
{{ quarantine_view('stripe', 'products') }}
